package kube

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

//go:embed stages.yaml
var stages []byte

// NodeName is the kwok node pods are scheduled on.
const NodeName = "kwok-node-0"

// FailLabel on a pod makes kwok fail it (exit code 1).
const FailLabel = "prenv.dev/test-fail"

// ContainerLog is the file in the cluster's directory that kwok serves as
// every container's log; SetLogs writes it.
const ContainerLog = "container.log"

// CrashLabel on a pod makes kwok report its containers crash-looping, and
// ImagePullLabel unable to pull their image.
const (
	CrashLabel     = "prenv.dev/test-crash"
	ImagePullLabel = "prenv.dev/test-image-pull"
)

// SetLogs makes lines what every container printed.
func (c *Cluster) SetLogs(lines ...string) error {
	var b strings.Builder
	now := time.Now().UTC()
	for i, l := range lines {
		// The CRI log format the kubelet reads: time, stream, tag, text.
		fmt.Fprintf(&b, "%s stdout F %s\n", now.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), l)
	}
	return os.WriteFile(filepath.Join(c.Dir, ContainerLog), []byte(b.String()), 0o644)
}

// Cluster is a running control plane.
type Cluster struct {
	Dir        string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
}

var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Binaries builds (or finds cached) the control plane's binaries with
// scripts/kube-binaries.sh under root and returns their directory.
func Binaries(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "kube-binaries.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build the control plane binaries: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// Start starts a control plane in dir with the binaries in bin, or reuses
// the one already running there, and returns once the kwok node is Ready.
func Start(ctx context.Context, dir, bin string) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if c, err := reuse(ctx, dir); err == nil {
		return c, nil
	}
	// The components bind ports chosen free a moment earlier; another
	// process may take one in between. Try again with fresh ports.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var c *Cluster
		if c, err = startOnce(ctx, dir, bin); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func startOnce(ctx context.Context, dir, bin string) (*Cluster, error) {
	Stop(dir) // whatever is left of an earlier one
	for _, sub := range []string{"etcd", "certs"} {
		os.RemoveAll(filepath.Join(dir, sub))
	}
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, err
	}
	if err := writeCerts(certs); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, cmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, certs, apiPort); err != nil {
		return nil, err
	}
	// Every container's log is ContainerLog's file (CRI format).
	logs := fmt.Sprintf("%s\n---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata: {name: prenv-test}\nspec:\n  logs:\n  - logsFile: %q\n    follow: true\n",
		stages, filepath.Join(dir, ContainerLog))
	if err := os.WriteFile(filepath.Join(dir, ContainerLog), nil, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "stages.yaml"), []byte(logs), 0o644); err != nil {
		return nil, err
	}
	c := func(name string) string { return filepath.Join(certs, name) }
	args := map[string][]string{
		"etcd": {"--data-dir", filepath.Join(dir, "etcd"), "--name", "prenv-test",
			"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort), "--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort), "--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
			"--initial-cluster", fmt.Sprintf("prenv-test=http://127.0.0.1:%d", peerPort), "--unsafe-no-fsync", "--log-level", "warn"},
		"kube-apiserver": {"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
			"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
			"--cert-dir", filepath.Join(dir, "apiserver-certs"),
			"--tls-cert-file", c("apiserver.crt"), "--tls-private-key-file", c("apiserver.key"), "--client-ca-file", c("ca.crt"),
			"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file", c("sa.pub"), "--service-account-signing-key-file", c("sa.key"),
			"--service-cluster-ip-range", "10.0.0.0/24", "--authorization-mode", "RBAC", "--allow-privileged=true",
			// Logs come from kwok's kubelet API on 127.0.0.1.
			"--kubelet-certificate-authority", c("ca.crt"), "--kubelet-client-certificate", c("admin.crt"), "--kubelet-client-key", c("admin.key"),
			"--kubelet-preferred-address-types", "InternalIP",
			// The kubernetes Service's endpoints cannot be a loopback address.
			"--endpoint-reconciler-type", "none"},
		"kube-controller-manager": {"--kubeconfig", kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1",
			"--secure-port", strconv.Itoa(cmPort), "--service-account-private-key-file", c("sa.key"), "--root-ca-file", c("ca.crt"),
			"--controllers", "*",
			// A test brings up twenty namespaces' releases at once: the
			// controllers' default 20 requests/s keeps their rollouts
			// (and old pods' deletions) waiting.
			"--kube-api-qps", "200", "--kube-api-burst", "400"},
		"kube-scheduler": {"--kubeconfig", kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort)},
		"kwok": {"--kubeconfig", kubeconfig, "--config", filepath.Join(dir, "stages.yaml"),
			"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
			"--server-address", fmt.Sprintf("127.0.0.1:%d", kwokPort), "--node-ip", "127.0.0.1", "--node-port", strconv.Itoa(kwokPort),
			"--tls-cert-file", c("kwok.crt"), "--tls-private-key-file", c("kwok.key")},
	}
	start := func(name string) error {
		logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd := exec.Command(filepath.Join(bin, name), args[name]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), "KUBE_FEATURE_WatchListClient=true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		pid := cmd.Process.Pid
		_ = cmd.Process.Release()
		return os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(pid)+"\n"+strings.Join(cmd.Args, " ")+"\n"), 0o644)
	}
	fail := func(err error) (*Cluster, error) {
		Stop(dir)
		return nil, err
	}
	if err := start("etcd"); err != nil {
		return fail(err)
	}
	if err := waitTCP(ctx, etcdPort, 30*time.Second); err != nil {
		return fail(fmt.Errorf("etcd: %w; see %s", err, filepath.Join(dir, "etcd.log")))
	}
	if err := start("kube-apiserver"); err != nil {
		return fail(err)
	}
	cl, err := connect(kubeconfig)
	if err != nil {
		return fail(err)
	}
	if err := waitReady(ctx, cl, 90*time.Second, func() bool { _, ok := alive(dir, "kube-apiserver"); return ok }); err != nil {
		return fail(fmt.Errorf("kube-apiserver: %w:\n%s", err, logTail(filepath.Join(dir, "kube-apiserver.log"), 5)))
	}
	for _, name := range components[2:] {
		if err := start(name); err != nil {
			return fail(err)
		}
	}
	cl.Dir = dir
	if err := cl.addNode(ctx); err != nil {
		return fail(err)
	}
	if err := cl.waitNodeReady(ctx, 60*time.Second); err != nil {
		return fail(fmt.Errorf("%w; see %s", err, filepath.Join(dir, "kwok.log")))
	}
	return cl, nil
}

// reuse returns the cluster running in dir, if every process is alive and
// the API server answers.
func reuse(ctx context.Context, dir string) (*Cluster, error) {
	for _, name := range components {
		if _, ok := alive(dir, name); !ok {
			return nil, fmt.Errorf("%s is not running", name)
		}
	}
	cl, err := connect(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, cl, 5*time.Second, func() bool { return true }); err != nil {
		return nil, err
	}
	cl.Dir = dir
	return cl, cl.waitNodeReady(ctx, 10*time.Second)
}

// alive returns the pid of component name in dir if that process still runs
// the command recorded beside it (a pid alone may have been reused).
func alive(dir, name string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0, false
	}
	first, recorded, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")) != strings.TrimSpace(recorded) {
		return 0, false
	}
	return pid, true
}

// Stop stops the control plane running in dir; stopping nothing succeeds.
func Stop(dir string) {
	for i := len(components) - 1; i >= 0; i-- {
		name := components[i]
		if pid, ok := alive(dir, name); ok {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for j := 0; j < 100; j++ {
				if _, ok := alive(dir, name); !ok {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if _, ok := alive(dir, name); ok {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		os.Remove(filepath.Join(dir, name+".pid"))
	}
}

func connect(kubeconfig string) (*Cluster, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: filepath.Dir(kubeconfig), Kubeconfig: kubeconfig, Config: cfg, Client: client}, nil
}

func waitReady(ctx context.Context, c *Cluster, timeout time.Duration, running func() bool) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !running() {
			return errors.New("it exited")
		}
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready within %v (last: %v)", timeout, last)
}

func (c *Cluster) addNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
	}}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (c *Cluster) waitNodeReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the kwok node did not become Ready")
}

func waitTCP(ctx context.Context, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on port %d after %v", port, timeout)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func writeKubeconfig(path, certs string, port int) error {
	read := func(name string) string {
		data, _ := os.ReadFile(filepath.Join(certs, name))
		return base64.StdEncoding.EncodeToString(data)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: prenv-test
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: prenv-test
  context: {cluster: prenv-test, user: admin}
current-context: prenv-test
`, port, read("ca.crt"), read("admin.crt"), read("admin.key"))
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func logTail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// ExecKubeconfig writes a kubeconfig whose user's credentials come from an
// exec plugin, the kind 'aws eks update-kubeconfig' writes (there the
// plugin is 'aws eks get-token'); here the plugin prints the admin's client
// certificate as an ExecCredential. It returns the kubeconfig's path.
func (c *Cluster) ExecKubeconfig() (string, error) {
	certs := filepath.Join(c.Dir, "certs")
	crt, err1 := os.ReadFile(filepath.Join(certs, "admin.crt"))
	key, err2 := os.ReadFile(filepath.Join(certs, "admin.key"))
	ca, err3 := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", err
	}
	cred, _ := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
		"status": map[string]string{"clientCertificateData": string(crt), "clientKeyData": string(key)}})
	credPath := filepath.Join(c.Dir, "exec-credential.json")
	plugin := filepath.Join(c.Dir, "exec-plugin")
	if err := os.WriteFile(credPath, cred, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\nexec cat "+credPath+"\n"), 0o755); err != nil {
		return "", err
	}
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: prenv-test
  cluster:
    server: https://%s
    certificate-authority-data: %s
users:
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: %s
      interactiveMode: Never
contexts:
- name: prenv-test
  context: {cluster: prenv-test, user: exec}
current-context: prenv-test
`, u.Host, base64.StdEncoding.EncodeToString(ca), plugin)
	path := filepath.Join(c.Dir, "kubeconfig-exec")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}
