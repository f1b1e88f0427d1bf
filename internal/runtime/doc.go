// Package runtime defines the Runtime: where an environment's application
// runs. Prepare its home, build and migrate a commit, deploy it and wait
// until ready, tear it down, list what prenv owns. Providers live in
// sub-packages (local, memory); runtimetest is the conformance suite.
package runtime
