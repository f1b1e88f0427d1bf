// Package store keeps what prenv knows about environments: the commit each
// one should be at and the one it serves, its state, URL and database, and the
// history of every run with the time of each step. Implementations live in
// sub-packages (sqlite).
package store
