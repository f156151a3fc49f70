// Command gen writes the declaration of the built-in functions to the file
// its one argument names: go generate ./processor/builtin runs it, so that
// the declaration is never a hand-kept copy of the schemas in Go.
package main

import (
	"fmt"
	"os"

	"github.com/kjobs/kjobs/processor/builtin"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen <output file>")
		os.Exit(2)
	}
	decl, err := builtin.Declarations()
	if err == nil {
		err = os.WriteFile(os.Args[1], decl, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
