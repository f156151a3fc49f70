// Command asynq is the peer of BENCHMARKS.md's accept path: the same
// net/http JSON front as hack/bench/bare, enqueueing each job through
// hibiken/asynq's Client.Enqueue with a TaskID, which checks uniqueness
// and writes the task and its queue in one Lua script, as kjobs' create
// script does. It is a module of its own so that kjobs does not depend on
// asynq.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	flag.Parse()
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(redis.NewClient(opts))

	http.HandleFunc("POST /jobs", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Function string         `json:"function"`
			Args     map[string]any `json:"args"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := uuid.Must(uuid.NewV7()).String()
		payload, err := json.Marshal(req.Args)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := client.EnqueueContext(r.Context(), asynq.NewTask(req.Function, payload), asynq.TaskID(id)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Location", "/jobs/"+id)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "function": req.Function, "args": req.Args, "status": "queued"})
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
