// Package local is the embedded Runtime. Runtime (used by the lifecycle in
// any process) builds a commit into the environment's directory and runs its
// migration; the Supervisor (hosted by prenv serve) runs the app processes,
// checks their health, switches the reverse proxy to a new one only when it
// is healthy, restarts crashed ones with backoff and brings every environment
// back when prenv serve restarts. They talk over serve's token-protected API.
//
// Layout under PRENV_HOME/envs/<name>/:
//
//	prenv-env.json           owner, environment key, labels (ours or not)
//	releases/<commit>/       checked-out source and build output
//	release.json             what the supervisor serves: commit, command, port
//	app.log                  build, migration and app output (prenv logs)
//
// For the sweeper the Runtime is an env.Inventory: the homes under envs
// (with what a killed prepare or teardown left) and, when environments
// have users of their own, the processes of a user id whose home is gone.
package local
