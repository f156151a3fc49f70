package metrics

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis returns a hook that counts the failed commands of the client it is
// added to (rdb.AddHook).
func (c *Clients) Redis() redis.Hook { return redisHook{c} }

type redisHook struct{ c *Clients }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if failed(ctx, err) {
			h.c.redis.WithLabelValues("dial").Inc()
		}
		return conn, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if failed(ctx, err) {
			h.c.redis.WithLabelValues(cmd.Name()).Inc()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if failed(ctx, cmd.Err()) {
				h.c.redis.WithLabelValues(cmd.Name()).Inc()
			}
		}
		return err
	}
}

// failed tells an error of Redis from the answers that are not: redis.Nil
// (no such key), NOSCRIPT (a script's first run, which go-redis answers by
// sending the script) and the end of the caller's context (a client gone,
// a blocking pop stopped at shutdown).
func failed(ctx context.Context, err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), ctx.Err() != nil:
		return false
	case strings.HasPrefix(err.Error(), "NOSCRIPT"):
		return false
	}
	return true
}
