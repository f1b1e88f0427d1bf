package rdsemu

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type handler func(s *Server, ctx context.Context, f form) (any, error)

var handlers = map[string]handler{
	"RestoreDBClusterToPointInTime": (*Server).restoreCluster,
	"CreateDBInstance":              (*Server).createInstance,
	"DescribeDBClusters":            (*Server).describeClusters,
	"DescribeDBInstances":           (*Server).describeInstances,
	"ModifyDBCluster":               (*Server).modifyCluster,
	"DeleteDBInstance":              (*Server).deleteInstance,
	"DeleteDBCluster":               (*Server).deleteCluster,
	"AddTagsToResource":             (*Server).addTags,
	"ListTagsForResource":           (*Server).listTags,
	"DescribeDBClusterSnapshots":    (*Server).describeSnapshots,
	"RestoreDBClusterFromSnapshot":  (*Server).restoreFromSnapshot,
	"CreateDBClusterSnapshot":       (*Server).createSnapshot,
	"DeleteDBClusterSnapshot":       (*Server).deleteSnapshot,
}

func actions() []string {
	out := make([]string, 0, len(handlers))
	for a := range handlers {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// The XML shapes of RDS's results (the members prenv reads, and a few more).

type xmlCluster struct {
	DBClusterIdentifier     string      `xml:"DBClusterIdentifier"`
	DBClusterArn            string      `xml:"DBClusterArn"`
	Status                  string      `xml:"Status"`
	Engine                  string      `xml:"Engine"`
	EngineVersion           string      `xml:"EngineVersion"`
	Endpoint                string      `xml:"Endpoint,omitempty"`
	ReaderEndpoint          string      `xml:"ReaderEndpoint,omitempty"`
	Port                    int         `xml:"Port"`
	MasterUsername          string      `xml:"MasterUsername"`
	DeletionProtection      bool        `xml:"DeletionProtection"`
	ClusterCreateTime       string      `xml:"ClusterCreateTime"`
	CloneGroupID            string      `xml:"CloneGroupId,omitempty"`
	DBClusterParameterGroup string      `xml:"DBClusterParameterGroup,omitempty"`
	DBSubnetGroup           string      `xml:"DBSubnetGroup,omitempty"`
	VpcSecurityGroups       []xmlSG     `xml:"VpcSecurityGroups>VpcSecurityGroupMembership"`
	DBClusterMembers        []xmlMember `xml:"DBClusterMembers>DBClusterMember"`
	TagList                 []tag       `xml:"TagList>Tag"`
	MasterUserSecret        *xmlSecret  `xml:"MasterUserSecret,omitempty"`
}

type xmlSG struct {
	VpcSecurityGroupID string `xml:"VpcSecurityGroupId"`
	Status             string `xml:"Status"`
}

type xmlMember struct {
	DBInstanceIdentifier string `xml:"DBInstanceIdentifier"`
	IsClusterWriter      bool   `xml:"IsClusterWriter"`
}

type xmlSecret struct {
	SecretArn    string `xml:"SecretArn"`
	SecretStatus string `xml:"SecretStatus"`
}

type xmlInstance struct {
	DBInstanceIdentifier string       `xml:"DBInstanceIdentifier"`
	DBInstanceArn        string       `xml:"DBInstanceArn"`
	DBInstanceClass      string       `xml:"DBInstanceClass"`
	Engine               string       `xml:"Engine"`
	DBInstanceStatus     string       `xml:"DBInstanceStatus"`
	DBClusterIdentifier  string       `xml:"DBClusterIdentifier"`
	DeletionProtection   bool         `xml:"DeletionProtection"`
	InstanceCreateTime   string       `xml:"InstanceCreateTime"`
	Endpoint             *xmlEndpoint `xml:"Endpoint,omitempty"`
	TagList              []tag        `xml:"TagList>Tag"`
}

type xmlEndpoint struct {
	Address string `xml:"Address"`
	Port    int    `xml:"Port"`
}

const timeFormat = "2006-01-02T15:04:05.000Z"

func (s *Server) clusterXML(c *cluster, now time.Time) xmlCluster {
	x := xmlCluster{
		DBClusterIdentifier: c.ID, DBClusterArn: s.arn("cluster", c.ID), Status: s.clusterStatus(c, now), Engine: c.Engine,
		EngineVersion: c.EngineVersion, Port: c.Port, MasterUsername: c.MasterUser, DeletionProtection: c.DeletionProtection,
		ClusterCreateTime: c.Created.UTC().Format(timeFormat), CloneGroupID: c.CloneGroup,
		DBClusterParameterGroup: c.ParameterGroup, DBSubnetGroup: c.SubnetGroup, TagList: slices.Clone(c.Tags),
	}
	if x.Status != "creating" {
		x.Endpoint, x.ReaderEndpoint = c.Host, c.Host
	}
	for _, sg := range c.SecurityGroups {
		x.VpcSecurityGroups = append(x.VpcSecurityGroups, xmlSG{VpcSecurityGroupID: sg, Status: "active"})
	}
	ids := make([]string, 0)
	for id, i := range s.instances {
		if i.Cluster == c.ID && s.instanceStatus(i, now) != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for n, id := range ids {
		x.DBClusterMembers = append(x.DBClusterMembers, xmlMember{DBInstanceIdentifier: id, IsClusterWriter: n == 0})
	}
	if c.ManagedSecret {
		x.MasterUserSecret = &xmlSecret{SecretArn: "arn:aws:secretsmanager:" + s.opts.Region + ":" + s.opts.Account + ":secret:rds!cluster-" + c.ID, SecretStatus: "active"}
	}
	return x
}

func (s *Server) instanceXML(i *instance, now time.Time) xmlInstance {
	x := xmlInstance{
		DBInstanceIdentifier: i.ID, DBInstanceArn: s.arn("db", i.ID), DBInstanceClass: i.Class, Engine: i.Engine,
		DBInstanceStatus: s.instanceStatus(i, now), DBClusterIdentifier: i.Cluster, DeletionProtection: i.DeletionProtection,
		InstanceCreateTime: i.Created.UTC().Format(timeFormat), TagList: slices.Clone(i.Tags),
	}
	if c := s.clusters[i.Cluster]; c != nil && x.DBInstanceStatus != "creating" {
		addr := c.Host // a backend's database: the instance is the cluster's one server
		if rest, ok := strings.CutPrefix(c.Host, c.ID+".cluster-"); ok {
			addr = i.ID + "." + rest
		}
		x.Endpoint = &xmlEndpoint{Address: addr, Port: c.Port}
	}
	return x
}

func (s *Server) restoreCluster(ctx context.Context, f form) (any, error) {
	id, src := f.get("DBClusterIdentifier"), f.get("SourceDBClusterIdentifier")
	if id == "" || src == "" {
		return nil, fault(http.StatusBadRequest, "MissingParameter", "DBClusterIdentifier and SourceDBClusterIdentifier are required")
	}
	if err := validIdentifier("DBClusterIdentifier", id); err != nil {
		return nil, err
	}
	if f.get("RestoreToTime") == "" && !f.bool("UseLatestRestorableTime") {
		return nil, fault(http.StatusBadRequest, "InvalidParameterCombination", "Either RestoreToTime or UseLatestRestorableTime must be specified")
	}
	if err := validTags(f.tags()); err != nil {
		return nil, err
	}
	restoreType := f.get("RestoreType")
	if restoreType == "" {
		restoreType = "full-copy" // the API's default
	}
	if restoreType != "full-copy" && restoreType != "copy-on-write" {
		return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "RestoreType %q: want full-copy or copy-on-write", restoreType)
	}
	s.mu.Lock()
	s.gc(ctx)
	now := s.opts.Now()
	source := s.clusters[src]
	if source == nil || s.clusterStatus(source, now) == "deleting" || s.clusterStatus(source, now) == "" {
		s.mu.Unlock()
		return nil, fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", src)
	}
	if s.clusterStatus(source, now) != "available" {
		s.mu.Unlock()
		return nil, fault(http.StatusBadRequest, "InvalidDBClusterStateFault", "DBCluster %s is not in available state.", src)
	}
	if s.clusters[id] != nil {
		s.mu.Unlock()
		return nil, fault(http.StatusBadRequest, "DBClusterAlreadyExistsFault", "DB Cluster already exists")
	}
	if len(s.clusters) >= s.opts.ClusterQuota {
		s.mu.Unlock()
		return nil, fault(http.StatusForbidden, "DBClusterQuotaExceededFault", "Cannot create more than %d DB clusters for this account.", s.opts.ClusterQuota)
	}
	c := &cluster{ID: id, Engine: source.Engine, EngineVersion: source.EngineVersion, MasterUser: source.MasterUser, Password: source.Password,
		ParameterGroup: f.get("DBClusterParameterGroupName"), SubnetGroup: f.get("DBSubnetGroupName"), SecurityGroups: f.list("VpcSecurityGroupIds"),
		Tags: f.tags(), Created: now, ReadyAt: now.Add(s.opts.ClusterCreate), DeletionProtection: f.bool("DeletionProtection"),
		Host: s.endpoint(id), Port: source.Port}
	if c.ParameterGroup == "" {
		c.ParameterGroup = "default.aurora-postgresql16"
	}
	if c.SubnetGroup == "" {
		c.SubnetGroup = "default"
	}
	if len(c.SecurityGroups) == 0 {
		c.SecurityGroups = []string{"sg-default0"} // the VPC's default group, as RDS does
	}
	if restoreType == "copy-on-write" {
		// Cloning a cluster that is in no clone group yet makes one.
		if source.CloneGroup == "" {
			source.CloneGroup = newCloneGroup()
		}
		c.CloneGroup = source.CloneGroup
	}
	if s.opts.Backend == nil {
		s.clusters[id] = c
		defer s.mu.Unlock()
		return struct{ DBCluster xmlCluster }{s.clusterXML(c, now)}, nil
	}
	// The data: a copy of the source's as it is now, when it has a
	// database of its own and the backend can copy it; else the backend's
	// golden data. RestoreToTime is not honoured: the data is the latest.
	c.making = true
	s.clusters[id] = c
	cloner, copies := s.opts.Backend.(Cloner)
	copies = copies && source.HasDB
	if copies {
		source.copies++
	}
	s.mu.Unlock()
	// RDS makes what it accepted even if the client goes away meanwhile.
	ctx = context.WithoutCancel(ctx)
	var ep Endpoint
	var err error
	if copies {
		ep, err = cloner.Clone(ctx, id, src)
		s.mu.Lock()
		source.copies--
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

func (s *Server) createInstance(ctx context.Context, f form) (any, error) {
	id, clusterID, class, engine := f.get("DBInstanceIdentifier"), f.get("DBClusterIdentifier"), f.get("DBInstanceClass"), f.get("Engine")
	if id == "" || class == "" || engine == "" {
		return nil, fault(http.StatusBadRequest, "MissingParameter", "DBInstanceIdentifier, DBInstanceClass and Engine are required")
	}
	if err := validIdentifier("DBInstanceIdentifier", id); err != nil {
		return nil, err
	}
	if err := validTags(f.tags()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(ctx)
	now := s.opts.Now()
	c := s.clusters[clusterID]
	if clusterID == "" || c == nil || s.clusterStatus(c, now) == "deleting" {
		return nil, fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", clusterID)
	}
	if engine != c.Engine {
		return nil, fault(http.StatusBadRequest, "InvalidParameterCombination", "The engine name requested for your DB instance (%s) doesn't match the engine name of your DB cluster (%s).", engine, c.Engine)
	}
	if !validClass(class) {
		return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "Invalid DB Instance class: %s", class)
	}
	if s.instances[id] != nil {
		return nil, fault(http.StatusBadRequest, "DBInstanceAlreadyExists", "DB instance already exists")
	}
	if len(s.instances) >= s.opts.InstanceQuota {
		return nil, fault(http.StatusBadRequest, "InstanceQuotaExceeded", "Cannot create more than %d DB instances for this account.", s.opts.InstanceQuota)
	}
	i := &instance{ID: id, Cluster: clusterID, Class: class, Engine: engine, Tags: f.tags(), Created: now, ReadyAt: now.Add(s.opts.InstanceCreate),
		DeletionProtection: f.bool("DeletionProtection")}
	s.instances[id] = i
	return struct{ DBInstance xmlInstance }{s.instanceXML(i, now)}, nil
}

func validClass(class string) bool {
	parts := strings.Split(class, ".")
	return len(parts) == 3 && parts[0] == "db" && parts[1] != "" && parts[2] != ""
}

// pageOf sorts ids and returns the page of them the request asks for,
// each made into an item, with the marker of the next page.
func pageOf[T any](f form, ids []string, item func(id string) T) ([]T, string, error) {
	sort.Strings(ids)
	from, to, marker, err := page(f, ids)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, 0, to-from)
	for _, id := range ids[from:to] {
		out = append(out, item(id))
	}
	return out, marker, nil
}

// page applies MaxRecords (20 to 100, default 100) and Marker to the
// sorted ids. A marker is opaque to callers, as RDS documents it; here it
// names the last identifier of the previous page, so that what is created
// or deleted between two pages neither repeats nor hides another item (an
// offset would skip one after each deletion, and a sweep lists while it
// deletes).
func page(f form, ids []string) (from, to int, marker string, err error) {
	max := 100
	if v := f.get("MaxRecords"); v != "" {
		max, err = strconv.Atoi(v)
		if err != nil || max < 20 || max > 100 {
			return 0, 0, "", fault(http.StatusBadRequest, "InvalidParameterValue", "MaxRecords %q: want 20 to 100", v)
		}
	}
	if v := f.get("Marker"); v != "" {
		last, derr := base64.RawURLEncoding.DecodeString(v)
		if derr != nil || len(last) == 0 {
			return 0, 0, "", fault(http.StatusBadRequest, "InvalidParameterValue", "Marker %q is not valid: pass the Marker of the previous response as it is", v)
		}
		from = sort.SearchStrings(ids, string(last))
		if from < len(ids) && ids[from] == string(last) {
			from++
		}
	}
	to = min(len(ids), from+max)
	if to < len(ids) {
		marker = base64.RawURLEncoding.EncodeToString([]byte(ids[to-1]))
	}
	return from, to, marker, nil
}

func (s *Server) describeClusters(ctx context.Context, f form) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(ctx)
	now := s.opts.Now()
	want := map[string]bool{}
	if id := f.get("DBClusterIdentifier"); id != "" {
		if c := s.clusters[id]; c == nil || s.clusterStatus(c, now) == "" {
			return nil, fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", id)
		}
		want[id] = true
	}
	filters := f.filters()
	for name, vals := range filters {
		switch name {
		case "db-cluster-id":
			for _, v := range vals {
				want[v] = true
			}
		case "engine":
		default:
			return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "Unrecognized filter name: %s.", name)
		}
	}
	ids := make([]string, 0, len(s.clusters))
	for id, c := range s.clusters {
		if s.clusterStatus(c, now) == "" {
			continue // gone, kept until a copy of its data is done
		}
		if len(want) > 0 && !want[id] {
			continue
		}
		if engines := filters["engine"]; len(engines) > 0 && !slices.Contains(engines, c.Engine) {
			continue
		}
		ids = append(ids, id)
	}
	items, marker, err := pageOf(f, ids, func(id string) xmlCluster { return s.clusterXML(s.clusters[id], now) })
	if err != nil {
		return nil, err
	}
	return struct {
		DBClusters []xmlCluster `xml:"DBClusters>DBCluster"`
		Marker     string       `xml:"Marker,omitempty"`
	}{items, marker}, nil
}

func (s *Server) describeInstances(ctx context.Context, f form) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(ctx)
	now := s.opts.Now()
	if id := f.get("DBInstanceIdentifier"); id != "" && s.instances[id] == nil {
		return nil, fault(http.StatusNotFound, "DBInstanceNotFound", "DBInstance %s not found.", id)
	}
	filters := f.filters()
	for name := range filters {
		if name != "db-cluster-id" && name != "db-instance-id" {
			return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "Unrecognized filter name: %s.", name)
		}
	}
	ids := make([]string, 0, len(s.instances))
	for id, i := range s.instances {
		if want := f.get("DBInstanceIdentifier"); want != "" && id != want {
			continue
		}
		if v := filters["db-instance-id"]; len(v) > 0 && !slices.Contains(v, id) {
			continue
		}
		if v := filters["db-cluster-id"]; len(v) > 0 && !slices.Contains(v, i.Cluster) {
			continue
		}
		ids = append(ids, id)
	}
	items, marker, err := pageOf(f, ids, func(id string) xmlInstance { return s.instanceXML(s.instances[id], now) })
	if err != nil {
		return nil, err
	}
	return struct {
		DBInstances []xmlInstance `xml:"DBInstances>DBInstance"`
		Marker      string        `xml:"Marker,omitempty"`
	}{items, marker}, nil
}

func (s *Server) modifyCluster(ctx context.Context, f form) (any, error) {
	id := f.get("DBClusterIdentifier")
	s.mu.Lock()
	s.gc(ctx)
	now := s.opts.Now()
	c := s.clusters[id]
	if c == nil {
		s.mu.Unlock()
		return nil, fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", id)
	}
	if st := s.clusterStatus(c, now); st != "available" {
		s.mu.Unlock()
		return nil, fault(http.StatusBadRequest, "InvalidDBClusterStateFault", "DBCluster %s is not in available state (it is %s).", id, st)
	}
	pw, managed := f.get("MasterUserPassword"), f.bool("ManageMasterUserPassword")
	if pw != "" && managed {
		s.mu.Unlock()
		return nil, fault(http.StatusBadRequest, "InvalidParameterCombination", "MasterUserPassword and ManageMasterUserPassword cannot be specified together.")
	}
	if pw != "" && (len(pw) < 8 || len(pw) > 128) {
		s.mu.Unlock()
		return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "The parameter MasterUserPassword is not a valid password because it is shorter than 8 characters.")
	}
	if v := f.get("DeletionProtection"); v != "" {
		c.DeletionProtection = v == "true"
	}
	if pw != "" || managed {
		c.ModifiedAt = now.Add(s.opts.Modify)
	}
	if managed {
		c.ManagedSecret = true
		pw = randID(24)
	}
	hasDB := c.HasDB
	s.mu.Unlock()
	if pw != "" {
		if s.opts.Backend != nil && hasDB {
			if err := s.opts.Backend.SetPassword(ctx, id, pw); err != nil {
				return nil, fault(http.StatusInternalServerError, "InternalFailure", "the emulator's database for %s: %v", id, err)
			}
		}
		s.mu.Lock()
		c.Password = pw
		if !managed {
			c.ManagedSecret = false
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return struct{ DBCluster xmlCluster }{s.clusterXML(c, now)}, nil
}

func (s *Server) deleteInstance(ctx context.Context, f form) (any, error) {
	id := f.get("DBInstanceIdentifier")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(ctx)
	now := s.opts.Now()
	i := s.instances[id]
	if i == nil {
		return nil, fault(http.StatusNotFound, "DBInstanceNotFound", "DBInstance %s not found.", id)
	}
	switch st := s.instanceStatus(i, now); {
	case i.DeletionProtection:
		return nil, fault(http.StatusBadRequest, "InvalidParameterCombination", "Cannot delete protected DB Instance, please disable deletion protection and try again.")
	case st == "deleting":
		return nil, fault(http.StatusBadRequest, "InvalidDBInstanceState", "Instance %s is already being deleted.", id)
	case st != "available":
		return nil, fault(http.StatusBadRequest, "InvalidDBInstanceState", "Instance %s is not in available state (it is %s).", id, st)
	}
	i.Deleting, i.DeletedAt = true, now.Add(s.opts.InstanceDelete)
	return struct{ DBInstance xmlInstance }{s.instanceXML(i, now)}, nil
}

func (s *Server) deleteCluster(ctx context.Context, f form) (any, error) {
	id, final, skip := f.get("DBClusterIdentifier"), f.get("FinalDBSnapshotIdentifier"), f.bool("SkipFinalSnapshot")
	s.mu.Lock()
	s.gc(ctx)
	now := s.opts.Now()
	c := s.clusters[id]
	refuse := func(e *apiError) (any, error) {
		s.mu.Unlock()
		return nil, e
	}
	if c == nil || s.clusterStatus(c, now) == "" {
		return refuse(fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", id))
	}
	if c.DeletionProtection {
		return refuse(fault(http.StatusBadRequest, "InvalidParameterCombination", "Cannot delete protected Cluster, please disable deletion protection and try again."))
	}
	if !skip && final == "" {
		return refuse(fault(http.StatusBadRequest, "InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified."))
	}
	if skip && final != "" {
		return refuse(fault(http.StatusBadRequest, "InvalidParameterCombination", "FinalDBSnapshotIdentifier can not be specified when deleting a cluster with SkipFinalSnapshot=true."))
	}
	if final != "" {
		if err := validSnapshotIdentifier("FinalDBSnapshotIdentifier", final); err != nil {
			return refuse(err)
		}
	}
	for _, i := range s.instances {
		if i.Cluster == id && s.instanceStatus(i, now) != "" {
			return refuse(fault(http.StatusBadRequest, "InvalidDBClusterStateFault", "Cluster cannot be deleted, it still contains DB instances in non-deleting state."))
		}
	}
	if st := s.clusterStatus(c, now); st != "available" {
		return refuse(fault(http.StatusBadRequest, "InvalidDBClusterStateFault", "DBCluster %s is not in available state (it is %s).", id, st))
	}
	var sn *snapshot
	if final != "" {
		var err *apiError
		if sn, err = s.newSnapshot(c, final, typeManual, nil, now); err != nil {
			return refuse(err)
		}
	}
	x := s.clusterXML(c, now)
	c.Deleting, c.DeletedAt = true, now.Add(s.opts.ClusterDelete)
	x.Status = "deleting"
	s.mu.Unlock()
	if sn != nil {
		// The final snapshot is taken before the cluster goes (it stays
		// while copied); if it cannot be, the cluster is not deleted.
		has, size, err := s.backendSnapshot(context.WithoutCancel(ctx), c, sn)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.snapshotMade(c, sn, has, size, err); err != nil {
			c.Deleting = false
			return nil, err
		}
	}
	return struct{ DBCluster xmlCluster }{x}, nil
}

// resource finds the cluster, instance or cluster snapshot an ARN names
// (arn:aws:rds:REGION:ACCOUNT:cluster:ID, ...:db:ID or
// ...:cluster-snapshot:ID, where an automated snapshot's ID has a colon).
// What is gone is not found, with the fault of its kind, as RDS answers.
func (s *Server) resource(ctx context.Context, arn string) (*[]tag, *apiError) {
	s.gc(ctx)
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "rds" {
		return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "ResourceName %q is not an RDS ARN (arn:aws:rds:region:account:cluster:id or ...:db:id)", arn)
	}
	region, account, kind, id := parts[3], parts[4], parts[5], parts[6]
	mine := region == s.opts.Region && account == s.opts.Account
	switch kind {
	case "cluster":
		if c := s.clusters[id]; c != nil && mine {
			return &c.Tags, nil
		}
		return nil, fault(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", arn)
	case "db":
		if i := s.instances[id]; i != nil && mine {
			return &i.Tags, nil
		}
		return nil, fault(http.StatusNotFound, "DBInstanceNotFound", "DBInstance %s not found.", arn)
	case "cluster-snapshot":
		if sn := s.snapshots[id]; sn != nil && mine && !sn.Deleted {
			return &sn.Tags, nil
		}
		return nil, fault(http.StatusNotFound, "DBClusterSnapshotNotFoundFault", "DBClusterSnapshot %s not found.", arn)
	}
	return nil, fault(http.StatusBadRequest, "InvalidParameterValue", "ResourceName %q: the emulator tags clusters, instances and cluster snapshots only", arn)
}

func (s *Server) addTags(ctx context.Context, f form) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tags, err := s.resource(ctx, f.get("ResourceName"))
	if err != nil {
		return nil, err
	}
	if err := validTags(f.tags()); err != nil {
		return nil, err
	}
	for _, t := range f.tags() {
		replaced := false
		for n := range *tags {
			if (*tags)[n].Key == t.Key {
				(*tags)[n].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			*tags = append(*tags, t)
		}
	}
	return struct{}{}, nil
}

func (s *Server) listTags(ctx context.Context, f form) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tags, err := s.resource(ctx, f.get("ResourceName"))
	if err != nil {
		return nil, err
	}
	return struct {
		TagList []tag `xml:"TagList>Tag"`
	}{slices.Clone(*tags)}, nil
}
