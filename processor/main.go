// Command processor is the image of the built-in functions: the container
// of every kjobs Job whose function declares no image of its own, and the
// child process of the local runner. It runs the built-in function its
// environment names, with the job's arguments, and exits 0 on success, 1
// on failure and 2 for a request that can never succeed. See package
// github.com/kjobs/kjobs/processor/function.
package main

import (
	"github.com/kjobs/kjobs/processor/builtin"
	"github.com/kjobs/kjobs/processor/function"
)

func main() { function.Main(builtin.Funcs()...) }
