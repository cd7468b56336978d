package api

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
)

// docsFS holds the /docs assets: docs/dist is filled by `make docs-assets`
// from the npm package pinned in docs/package-lock.json (swagger-ui-dist),
// so the reference renders on a network without internet access. Only a
// README is committed there, so the binary builds without npm.
//
//go:embed docs/dist
var docsFS embed.FS

const docsBundle = "swagger-ui-bundle.js"

// docsInit starts Swagger UI on our document. It is a file of its own
// because the page's Content-Security-Policy allows no inline script;
// validatorUrl null keeps Swagger UI from calling its public validator.
const docsInit = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    tryItOutEnabled: false,
    persistAuthorization: false
  });
});
`

func docsAssets() http.Handler {
	sub, err := fs.Sub(docsFS, "docs/dist")
	if err != nil {
		// fs.Sub fails only on an invalid path, which is a constant here.
		panic(err)
	}
	return http.FileServerFS(filesOnly{sub})
}

func docsBuilt() bool {
	_, err := fs.Stat(docsFS, "docs/dist/"+docsBundle)
	return err == nil
}

// serveDocsInit serves the script that starts the reference viewer.
func serveDocsInit(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	fmt.Fprint(w, docsInit)
}

// serveDocs renders the API reference with the embedded Swagger UI.
func (s *Server) serveDocs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if !docsBuilt() {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Foundry API reference</title></head>
<body><h1>Foundry API reference</h1>
<p>The reference viewer was not built into this binary (run <code>make docs-assets</code> before <code>go build</code>).</p>
<p>The OpenAPI 3.1 document is at <a href="/openapi.json">/openapi.json</a> and <a href="/openapi.yaml">/openapi.yaml</a>.</p>
</body></html>
`)
		return
	}
	fmt.Fprint(w, `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Foundry API reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/`+docsBundle+`"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`)
}
