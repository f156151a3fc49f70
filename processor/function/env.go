package function

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/event"
)

// The environment of a function's container, which every kjobs runner sets.
const (
	// EnvFunction names the function to run. Required.
	EnvFunction = "KJOBS_FUNCTION"
	// EnvArgs holds the job's arguments, a JSON object. Defaults to none.
	EnvArgs = "KJOBS_ARGS"
	// EnvJobID is the job's ID.
	EnvJobID = "KJOBS_JOB_ID"
	// EnvAttempt numbers the attempt from 1. Defaults to 1, so that a
	// function can be run by hand.
	EnvAttempt = "KJOBS_ATTEMPT"
	// EnvEvent holds the CloudEvent that started the job, in the CloudEvents
	// JSON structured format; unset when no event started it.
	EnvEvent = "KJOBS_EVENT"
	// EnvEventFile names a file holding that event in the same format,
	// which runners set instead of EnvEvent for an event too large for an
	// environment variable.
	EnvEventFile = "KJOBS_EVENT_FILE"
	// EnvTerminationLog is where the result or error goes. Defaults to
	// DefaultTerminationLog; the local runner sets a file of its own.
	EnvTerminationLog = "KJOBS_TERMINATION_LOG"
)

// DefaultTerminationLog is where Kubernetes reads a container's termination
// message from unless its terminationMessagePath says otherwise.
const DefaultTerminationLog = "/dev/termination-log"

// config is one attempt as the environment describes it.
type config struct {
	Function       string
	Args           Args
	JobID          string
	Attempt        int
	Event          *event.Event
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
		args, err := decodeArgs([]byte(s))
		if err != nil {
			return c, fmt.Errorf("%s is not a JSON object: %v", EnvArgs, err)
		}
		c.Args = args
	}
	e, err := loadEvent(getenv)
	c.Event = e
	return c, err
}

// decodeArgs reads one JSON object, numbers as json.Number.
func decodeArgs(data []byte) (Args, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var args Args
	if err := dec.Decode(&args); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the object")
	}
	return args, nil
}

// loadEvent reads the triggering event from EnvEvent or EnvEventFile; nil
// when neither is set.
func loadEvent(getenv func(string) string) (*event.Event, error) {
	inline, file := getenv(EnvEvent), getenv(EnvEventFile)
	var data []byte
	switch {
	case inline != "" && file != "":
		return nil, fmt.Errorf("both %s and %s are set; a runner sets one", EnvEvent, EnvEventFile)
	case inline != "":
		data = []byte(inline)
	case file != "":
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvEventFile, err)
		}
	default:
		return nil, nil
	}
	name := EnvEvent
	if file != "" {
		name = EnvEventFile + " " + file
	}
	e := event.New()
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%s is not a CloudEvent in JSON format: %v", name, err)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%s is not a valid CloudEvent: %v", name, err)
	}
	return &e, nil
}
