// Package localpg is the embedded Cloner: a clone is a reflink copy of the
// stopped golden data directory (FICLONE on Linux XFS and btrfs, clonefile on
// macOS), served by a postgres of its own on a port from a pool, with its own
// socket directory and small memory settings. A manifest beside each clone
// records its owner, environment, golden generation, port and times.
package localpg
