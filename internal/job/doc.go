// Package job holds the kjobs job model: the request that asks for a job, the
// record kept for it, its attempts and the state machine that moves it from
// queued to succeeded or failed.
//
// A job's ID is the ID of the CloudEvent that asked for it, so every step
// keyed by job ID is idempotent across redeliveries of that event.
package job
