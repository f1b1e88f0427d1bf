package rdsemu

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cluster snapshots: DescribeDBClusterSnapshots, CreateDBClusterSnapshot,
// DeleteDBClusterSnapshot and RestoreDBClusterFromSnapshot, with the
// parameters and faults of the RDS API reference.

type xmlSnapshot struct {
	DBClusterSnapshotIdentifier string `xml:"DBClusterSnapshotIdentifier"`
	DBClusterIdentifier         string `xml:"DBClusterIdentifier"`
	DBClusterSnapshotArn        string `xml:"DBClusterSnapshotArn"`
	SnapshotCreateTime          string `xml:"SnapshotCreateTime"`
	ClusterCreateTime           string `xml:"ClusterCreateTime"`
	Engine                      string `xml:"Engine"`
	EngineMode                  string `xml:"EngineMode"`
	EngineVersion               string `xml:"EngineVersion"`
	Status                      string `xml:"Status"`
	SnapshotType                string `xml:"SnapshotType"`
	MasterUsername              string `xml:"MasterUsername"`
	Port                        int    `xml:"Port"`
	PercentProgress             int    `xml:"PercentProgress"`
	AllocatedStorage            int    `xml:"AllocatedStorage"`
	StorageEncrypted            bool   `xml:"StorageEncrypted"`
	TagList                     []tag  `xml:"TagList>Tag"`
}

func (s *Server) snapshotXML(sn *snapshot, now time.Time) xmlSnapshot {
	x := xmlSnapshot{
		DBClusterSnapshotIdentifier: sn.ID, DBClusterIdentifier: sn.Cluster, DBClusterSnapshotArn: s.arn("cluster-snapshot", sn.ID),
		SnapshotCreateTime: sn.Created.UTC().Format(timeFormat), ClusterCreateTime: sn.ClusterCreated.UTC().Format(timeFormat),
		Engine: sn.Engine, EngineMode: "provisioned", EngineVersion: sn.EngineVersion, Status: s.snapshotStatus(sn, now),
		SnapshotType: sn.Type, MasterUsername: sn.MasterUser, Port: sn.Port, PercentProgress: 100,
		// GiB, rounded up: Aurora bills the storage a snapshot holds.
		AllocatedStorage: max(1, int((sn.Size+1<<30-1)>>30)), TagList: slices.Clone(sn.Tags),
	}
	if x.Status == "creating" {
		x.PercentProgress = 0
		if total := sn.ReadyAt.Sub(sn.Created); total > 0 && !sn.making {
			x.PercentProgress = min(99, int(100*now.Sub(sn.Created)/total))
		}
	}
	return x
}

var snapshotIdentifierRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,254}$`)

// validSnapshotIdentifier applies RDS's rules on the identifiers of manual
// snapshots (automated ones, rds:CLUSTER-DATE, are named by RDS).
func validSnapshotIdentifier(param, id string) *apiError {
	if !snapshotIdentifierRE.MatchString(id) || strings.Contains(id, "--") || strings.HasSuffix(id, "-") {
		return fault(http.StatusBadRequest, "InvalidParameterValue",
			"The parameter %s is not a valid identifier. Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive hyphens.", param)
	}
	return nil
}

// snapshotByRef finds the snapshot an identifier or an ARN
// (arn:aws:rds:REGION:ACCOUNT:cluster-snapshot:ID) names; nil if there is
// none. Called with mu held.
func (s *Server) snapshotByRef(ref string, now time.Time) *snapshot {
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		prefix := s.arn("cluster-snapshot", "")
		if !strings.HasPrefix(ref, prefix) {
			return nil
		}
		id = strings.TrimPrefix(ref, prefix)
	}
	if sn := s.snapshots[id]; sn != nil && s.snapshotStatus(sn, now) != "" {
		return sn
	}
	return nil
}

func snapshotNotFound(ref string) *apiError {
	return fault(http.StatusNotFound, "DBClusterSnapshotNotFoundFault", "DBClusterSnapshot %s not found.", ref)
}

func (s *Server) describeSnapshots(ctx context.Context, f form) (any, error) {
	clusterID, snapID, typ := f.get("DBClusterIdentifier"), f.get("DBClusterSnapshotIdentifier"), f.get("SnapshotType")
	if clusterID != "" && snapID != "" {
		return nil, fault(http.StatusBadRequest, "InvalidParameterCombination", "DBClusterIdentifier and DBClusterSnapshotIdentifier cannot be used together.")
	}
	switch typ {
	case "", typeAutomated, typeManual, "shared", "public", "awsbackup":
	default:
		return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "Invalid snapshot type: %s. Valid values are automated, manual, shared, public and awsbackup.", typ)
	}
	filters := f.filters()
	for name := range filters {
		switch name {
		case "db-cluster-id", "db-cluster-snapshot-id", "snapshot-type", "engine":
		default:
			return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "Unrecognized filter name: %s.", name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(ctx)
	now := s.opts.Now()
	if snapID != "" {
		// As the API reference says, an automated snapshot is found by
		// name only with SnapshotType automated.
		sn := s.snapshotByRef(snapID, now)
		if sn == nil || sn.Type == typeAutomated && typ != typeAutomated {
			return nil, snapshotNotFound(snapID)
		}
		snapID = sn.ID
	}
	// db-cluster-id takes identifiers and ARNs.
	clusterIDs := filters["db-cluster-id"]
	for i, v := range clusterIDs {
		clusterIDs[i] = strings.TrimPrefix(v, s.arn("cluster", ""))
	}
	ids := make([]string, 0, len(s.snapshots))
	for id, sn := range s.snapshots {
		switch {
		case s.snapshotStatus(sn, now) == "",
			clusterID != "" && sn.Cluster != clusterID,
			snapID != "" && id != snapID,
			typ != "" && sn.Type != typ,
			len(clusterIDs) > 0 && !slices.Contains(clusterIDs, sn.Cluster),
			len(filters["db-cluster-snapshot-id"]) > 0 && !slices.Contains(filters["db-cluster-snapshot-id"], id),
			len(filters["snapshot-type"]) > 0 && !slices.Contains(filters["snapshot-type"], sn.Type),
			len(filters["engine"]) > 0 && !slices.Contains(filters["engine"], sn.Engine):
			continue
		}
		ids = append(ids, id)
	}
	items, marker, err := pageOf(f, ids, func(id string) xmlSnapshot { return s.snapshotXML(s.snapshots[id], now) })
	if err != nil {
		return nil, err
	}
	return struct {
		DBClusterSnapshots []xmlSnapshot `xml:"DBClusterSnapshots>DBClusterSnapshot"`
		Marker             string        `xml:"Marker,omitempty"`
	}{items, marker}, nil
}

func (s *Server) createSnapshot(ctx context.Context, f form) (any, error) {
	id, clusterID := f.get("DBClusterSnapshotIdentifier"), f.get("DBClusterIdentifier")
	if id == "" || clusterID == "" {
		return nil, fault(http.StatusBadRequest, "MissingParameter", "DBClusterSnapshotIdentifier and DBClusterIdentifier are required")
	}
	if err := validSnapshotIdentifier("DBClusterSnapshotIdentifier", id); err != nil {
		return nil, err
	}
	if err := validTags(f.tags()); err != nil {
		return nil, err
	}
	// RDS takes the snapshot it accepted even if the client goes away.
	sn, err := s.snapshot(context.WithoutCancel(ctx), clusterID, id, typeManual, f.tags())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return struct{ DBClusterSnapshot xmlSnapshot }{s.snapshotXML(sn, s.opts.Now())}, nil
}

func (s *Server) deleteSnapshot(ctx context.Context, f form) (any, error) {
	id := f.get("DBClusterSnapshotIdentifier")
	if id == "" {
		return nil, fault(http.StatusBadRequest, "MissingParameter", "DBClusterSnapshotIdentifier is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(ctx)
	now := s.opts.Now()
	sn := s.snapshotByRef(id, now)
	if sn == nil || strings.HasPrefix(id, "arn:") {
		return nil, snapshotNotFound(id)
	}
	if sn.Type == typeAutomated {
		return nil, fault(http.StatusBadRequest, "InvalidDBClusterSnapshotStateFault", "Only manual snapshots may be deleted: %s is an automated snapshot, deleted with its cluster or by its retention period.", id)
	}
	if st := s.snapshotStatus(sn, now); st != "available" {
		return nil, fault(http.StatusBadRequest, "InvalidDBClusterSnapshotStateFault", "Cannot delete the snapshot %s: it is %s.", id, st)
	}
	x := s.snapshotXML(sn, now)
	sn.Deleted = true
	s.gc(ctx)
	return struct{ DBClusterSnapshot xmlSnapshot }{x}, nil
}

// versionBefore reports whether engine version a is older than b
// ("15.4" < "16.1" < "16.10").
func versionBefore(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea != nil || eb != nil {
			return pa[i] < pb[i]
		}
		if na != nb {
			return na < nb
		}
	}
	return len(pa) < len(pb)
}

func (s *Server) restoreFromSnapshot(ctx context.Context, f form) (any, error) {
	id, ref, engine, version := f.get("DBClusterIdentifier"), f.get("SnapshotIdentifier"), f.get("Engine"), f.get("EngineVersion")
	for _, p := range []struct{ name, v string }{{"DBClusterIdentifier", id}, {"SnapshotIdentifier", ref}, {"Engine", engine}} {
		if p.v == "" {
			return nil, fault(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter %s", p.name)
		}
	}
	if err := validIdentifier("DBClusterIdentifier", id); err != nil {
		return nil, err
	}
	if err := validTags(f.tags()); err != nil {
		return nil, err
	}
	port := 0
	if v := f.get("Port"); v != "" {
		var err error
		if port, err = strconv.Atoi(v); err != nil || port < 1150 || port > 65535 {
			return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "Invalid port %q: want 1150 to 65535", v)
		}
	}
	s.mu.Lock()
	s.gc(ctx)
	now := s.opts.Now()
	refuse := func(e *apiError) (any, error) {
		s.mu.Unlock()
		return nil, e
	}
	sn := s.snapshotByRef(ref, now)
	if sn == nil {
		return refuse(snapshotNotFound(ref))
	}
	if st := s.snapshotStatus(sn, now); st != "available" {
		return refuse(fault(http.StatusBadRequest, "InvalidDBClusterSnapshotStateFault", "Snapshot %s is not in available state (it is %s).", sn.ID, st))
	}
	if engine != sn.Engine {
		return refuse(fault(http.StatusBadRequest, "InvalidParameterCombination", "The engine name requested for your DB cluster (%s) doesn't match the engine name of the snapshot (%s).", engine, sn.Engine))
	}
	if version == "" {
		version = sn.EngineVersion
	} else if versionBefore(version, sn.EngineVersion) {
		return refuse(fault(http.StatusBadRequest, "InvalidParameterCombination", "Cannot restore a snapshot of %s %s to the older version %s.", sn.Engine, sn.EngineVersion, version))
	}
	if s.clusters[id] != nil {
		return refuse(fault(http.StatusBadRequest, "DBClusterAlreadyExistsFault", "DB Cluster already exists"))
	}
	if len(s.clusters) >= s.opts.ClusterQuota {
		return refuse(fault(http.StatusForbidden, "DBClusterQuotaExceededFault", "Cannot create more than %d DB clusters for this account.", s.opts.ClusterQuota))
	}
	// A new cluster of the snapshot's master user and password, in no clone
	// group, with the request's network, parameters and tags, and the
	// defaults RDS gives what the request leaves out.
	c := &cluster{ID: id, Engine: engine, EngineVersion: version, MasterUser: sn.MasterUser, Password: sn.Password,
		ParameterGroup: f.get("DBClusterParameterGroupName"), SubnetGroup: f.get("DBSubnetGroupName"), SecurityGroups: f.list("VpcSecurityGroupIds"),
		Tags: f.tags(), Created: now, ReadyAt: now.Add(s.opts.ClusterCreate), DeletionProtection: f.bool("DeletionProtection"),
		Host: s.endpoint(id), Port: sn.Port}
	if port != 0 {
		c.Port = port
	}
	if c.ParameterGroup == "" {
		c.ParameterGroup = "default.aurora-postgresql" + strings.Split(version, ".")[0]
	}
	if c.SubnetGroup == "" {
		c.SubnetGroup = "default"
	}
	if len(c.SecurityGroups) == 0 {
		c.SecurityGroups = []string{"sg-default0"}
	}
	if s.opts.Backend == nil {
		s.clusters[id] = c
		defer s.mu.Unlock()
		return struct{ DBCluster xmlCluster }{s.clusterXML(c, now)}, nil
	}
	// The data: the snapshot's, when the backend keeps it; else the
	// backend's golden data.
	c.making = true
	s.clusters[id] = c
	st, restores := s.opts.Backend.(Snapshotter)
	restores = restores && sn.HasData
	if restores {
		sn.restores++
	}
	s.mu.Unlock()
	// RDS makes what it accepted even if the client goes away meanwhile.
	ctx = context.WithoutCancel(ctx)
	var ep Endpoint
	var err error
	if restores {
		ep, err = st.Restore(ctx, id, sn.ID)
		s.mu.Lock()
		sn.restores--
		s.mu.Unlock()
	} else {
		ep.Host, ep.Port, ep.User, ep.Password, err = s.opts.Backend.Create(ctx, id)
	}
	if err := s.made(ctx, c, ep, err); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return struct{ DBCluster xmlCluster }{s.clusterXML(c, s.opts.Now())}, nil
}
