// Command genopenapi writes the API's OpenAPI document to a file (default
// ui/openapi.json, relative to the repository root), from which `npm run
// build` generates the dashboard's types:
//
//	go run ./ui/internal/genopenapi
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/foundry-appliance/foundry/ui/internal/openapidoc"
)

func main() {
	out := flag.String("o", "ui/openapi.json", "file to write")
	flag.Parse()
	doc, err := openapidoc.Generate()
	if err == nil {
		err = os.WriteFile(*out, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genopenapi:", err)
		os.Exit(1)
	}
}
