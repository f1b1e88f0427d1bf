// Package server is prenv serve's HTTP side: the reverse proxy that routes
// pr-N.localhost:<port> to the environment's app behind basic auth, the JSON
// API (health, environments, and the local runtime's token-protected calls),
// and an index of the environments.
package server
