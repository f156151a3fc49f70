package run

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kjobs/kjobs/internal/job"
)

// The processor's environment, which every runner sets (the README's Functions section).
const (
	EnvFunction       = "KJOBS_FUNCTION"
	EnvArgs           = "KJOBS_ARGS"
	EnvJobID          = "KJOBS_JOB_ID"
	EnvAttempt        = "KJOBS_ATTEMPT"
	EnvTerminationLog = "KJOBS_TERMINATION_LOG"
)

// DefaultTerminationLog is where Kubernetes reads a container's termination
// message from unless its terminationMessagePath says otherwise.
const DefaultTerminationLog = "/dev/termination-log"

// config is one attempt as the environment describes it.
type config struct {
	// Function names the function to run, from KJOBS_FUNCTION. Required.
	Function string
	// Args are the function's arguments, from KJOBS_ARGS: a JSON object of
	// string values. Defaults to none.
	Args job.Args
	// JobID is the job's ID, from KJOBS_JOB_ID.
	JobID string
	// Attempt numbers the attempt from 1, from KJOBS_ATTEMPT. Defaults to 1,
	// so that the binary can be run by hand.
	Attempt int
	// TerminationLog is where the result or error goes, from
	// KJOBS_TERMINATION_LOG. Defaults to DefaultTerminationLog.
	TerminationLog string
}

// loadConfig reads the environment through getenv. Even when it returns an
// error, the config holds every field it could read, so that the error can
// be logged with the job's ID and written to the termination log.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Function:       getenv(EnvFunction),
		JobID:          getenv(EnvJobID),
		Attempt:        1,
		TerminationLog: getenv(EnvTerminationLog),
	}
	if c.TerminationLog == "" {
		c.TerminationLog = DefaultTerminationLog
	}
	if c.Function == "" {
		return c, fmt.Errorf("%s is not set; it names the function to run", EnvFunction)
	}
	if s := getenv(EnvAttempt); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			c.Attempt = 0
			return c, fmt.Errorf("%s=%q is not an attempt number; want a whole number from 1", EnvAttempt, s)
		}
		c.Attempt = n
	}
	if s := getenv(EnvArgs); s != "" {
		if err := json.Unmarshal([]byte(s), &c.Args); err != nil {
			return c, fmt.Errorf("%s is not a JSON object of string values: %v", EnvArgs, err)
		}
	}
	return c, nil
}
