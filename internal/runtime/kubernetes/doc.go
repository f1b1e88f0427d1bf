// Package kubernetes is the Kubernetes runtime: each environment is a
// namespace with a quota, default limits, a network policy, Pod Security
// labels and the database Secret, and (with the Helm release, in progress)
// the team's chart installed into it. Namespaces carries the environment's
// home: create or adopt it, tear it down with a bound, list what prenv owns.
// For the sweeper, Runtime lists every namespace prenv made or would make
// in one paged pass, removes one only after reading it again, and renews
// an environment's expiry (sweep.go).
package kubernetes
