// Command resize is an example of a kjobs function in a module and an image
// of its own: it works out the size an image is scaled to, from the job's
// args, and says so. Its args are declared by the JSON Schema in
// functions.yaml, which kjobs checks every request against; Check is the
// function's own last word, for what a schema cannot say.
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kjobs/kjobs/processor/function"
)

func main() {
	function.Main(function.Func{Name: "resize", Check: checkResize, Run: resize})
}

// params are resize's args: {"source": {"width": 1200, "height": 800},
// "width": 300}.
type params struct {
	Source struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"source"`
	Width int `json:"width"`
}

func parse(args function.Args) (params, error) {
	var p params
	b, err := json.Marshal(args)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, err
	}
	return p, nil
}

func checkResize(args function.Args) error {
	p, err := parse(args)
	if err != nil {
		return err
	}
	if p.Width > p.Source.Width {
		return fmt.Errorf("args.width: %d is wider than the source's %d; resize only scales down", p.Width, p.Source.Width)
	}
	return nil
}

func resize(_ context.Context, env function.Env) (string, error) {
	p, err := parse(env.Args)
	if err != nil {
		return "", err
	}
	height := p.Source.Height * p.Width / p.Source.Width
	env.Log.Info("resizing", "from", fmt.Sprintf("%dx%d", p.Source.Width, p.Source.Height), "to", fmt.Sprintf("%dx%d", p.Width, height))
	return fmt.Sprintf("resized %dx%d to %dx%d", p.Source.Width, p.Source.Height, p.Width, height), nil
}
