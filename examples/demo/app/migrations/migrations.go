// Package migrations holds the demo app's schema migrations, applied in
// file-name order; the seed generator writes 0001's schema into the golden
// data, as production would already have it.
package migrations

import "embed"

// FS holds the *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
