// Command kjobs is the kjobs CLI. Installed as kn-jobs it is also the kn
// plugin `kn jobs`: the same binary, which takes its name from argv[0].
package main

import (
	"os"
	"path/filepath"

	"github.com/kjobs/kjobs/internal/cli"
)

func main() {
	os.Exit(cli.Execute(filepath.Base(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr))
}
