// Package server is prenv serve's HTTP side. A request's Host says whom it
// is for: pr-N.<serve.domain> goes through the reverse proxy to that
// environment's app behind basic auth; prenv's own hosts (the listen
// address, public_url's host, localhost) get the JSON API (health,
// environments, and the local runtime's token-protected calls), the index,
// the log pages and GitHub's webhooks; any other host gets neither. Every
// connection is bounded by header, read, write and idle timeouts; only
// authenticated long routes (the proxy, the local runtime's deploy) may
// outlast them.
package server
