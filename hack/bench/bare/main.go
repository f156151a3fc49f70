// Command bare is the baseline of BENCHMARKS.md: a plain net/http and
// go-redis server that does only the Redis writes of POST /jobs (in one
// transaction, one round trip) and the read of GET /jobs/stats, with none of
// kjobs' validation, problem responses, metrics or event hand-off.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	flag.Parse()
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	const p = "bare:{bare}:"

	http.HandleFunc("POST /jobs", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Function string            `json:"function"`
			Args     map[string]string `json:"args"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := uuid.Must(uuid.NewV7()).String()
		now := time.Now().UnixMilli()
		args, _ := json.Marshal(req.Args)
		member := fmt.Sprintf("%013d:%s", now, id)
		_, err := rdb.TxPipelined(r.Context(), func(tx redis.Pipeliner) error {
			tx.HSet(r.Context(), p+"job:"+id, "id", id, "function", req.Function, "args", args,
				"status", "queued", "attempt", 0, "member", member, "createdAt", now, "updatedAt", now)
			tx.ZAdd(r.Context(), p+"index", redis.Z{Member: member})
			tx.ZAdd(r.Context(), p+"status:queued", redis.Z{Member: member})
			tx.HIncrBy(r.Context(), p+"stats", "queued", 1)
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Location", "/jobs/"+id)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "function": req.Function, "args": req.Args, "status": "queued"})
	})
	http.HandleFunc("GET /jobs/stats", func(w http.ResponseWriter, r *http.Request) {
		v, err := rdb.HMGet(r.Context(), p+"stats", "succeeded", "failed", "retries", "queued", "running", "retrying").Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
