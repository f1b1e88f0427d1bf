// Package dbclone defines the Cloner: clone the golden source into a
// database for one environment, get it, delete it, list what prenv owns.
// Providers live in sub-packages (localpg, memory); dbclonetest is the
// conformance suite every provider passes.
package dbclone
