// Consumer groups through sarama (Go), the version Debian packages
// (golang-github-shopify-sarama-dev, sarama 1.22.1 on bookworm).
//
// Usage: sarama_group BOOTSTRAP [-timeout SECONDS] [-offsets-retention DURATION]
//
// ClusterAdmin.CreateTopic (4 partitions), a SyncProducer writing records
// round-robin over the partitions, then 2 sarama.ConsumerGroup members in one
// group: the group must settle with every partition claimed by exactly one
// member, every produced record must be consumed and marked, and the marked
// offsets committed (sarama commits every Consumer.Offsets.CommitInterval and
// when a session ends). ClusterAdmin.ListConsumerGroupOffsets checks the
// committed offsets. Then a 3rd member of the same group, alone, must resume
// from the committed offsets: it sees only the records produced after the
// commits, none of the committed ones again.
//
// sarama 1.22.1 sends fixed versions (no ApiVersions): FindCoordinator v0,
// JoinGroup v1, SyncGroup v0, Heartbeat v0, LeaveGroup v0, OffsetFetch v1,
// and OffsetCommit v1 if Consumer.Offsets.Retention is 0 (its default) or v2
// otherwise. Kafka 4 (KIP-896), like this broker, no longer serves
// OffsetCommit v0-v1, so the retention is set (-offsets-retention, default
// 24h) to make sarama send v2; -offsets-retention 0 shows the v1 refusal.
//
// Builds OFFLINE in GOPATH mode against Debian's packaged sources (see
// tests/support/mod.rs go_build_offline).
//
// Exit codes: 0 ok; 1 a check failed or the client returned an error;
// 2 bad usage; 3 the overall deadline passed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// Set with -ldflags "-X main.saramaVersion=..." by the test.
var saramaVersion = "unknown"

const (
	partitions = 4
	records    = 400
	later      = 40
	members    = 2
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func step(s string) {
	fmt.Fprintf(os.Stderr, "... %s\n", s)
}

// state is what the handlers of every member record.
type state struct {
	mu       sync.Mutex
	claims   map[string][]int32 // member name -> claimed partitions (current session)
	seen     map[[2]int64]string
	dup      int
	minSeen  int64 // lowest offset any consumer saw (resumer check)
	keys     []int
	sessions int
}

func newState() *state {
	return &state{claims: map[string][]int32{}, seen: map[[2]int64]string{}, minSeen: -1}
}

type handler struct {
	name string
	st   *state
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	var parts []int32
	for _, ps := range s.Claims() {
		parts = append(parts, ps...)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	h.st.claims[h.name] = parts
	h.st.sessions++
	step(fmt.Sprintf("%s generation %d claims %v", h.name, s.GenerationID(), parts))
	return nil
}

func (h *handler) Cleanup(s sarama.ConsumerGroupSession) error {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	h.st.claims[h.name] = nil
	return nil
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.st.mu.Lock()
		k := [2]int64{int64(m.Partition), m.Offset}
		if _, ok := h.st.seen[k]; ok {
			h.st.dup++
		}
		h.st.seen[k] = h.name
		if h.st.minSeen < 0 || m.Offset < h.st.minSeen {
			h.st.minSeen = m.Offset
		}
		if n, err := strconv.Atoi(string(m.Key)); err == nil {
			h.st.keys = append(h.st.keys, n)
		}
		h.st.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

// member runs Consume in a loop (each rebalance ends a session) until ctx ends.
func member(ctx context.Context, wg *sync.WaitGroup, g sarama.ConsumerGroup, topic string, h *handler, errs chan<- error) {
	defer wg.Done()
	for ctx.Err() == nil {
		if err := g.Consume(ctx, []string{topic}, h); err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case errs <- fmt.Errorf("%s: Consume: %v", h.name, err):
			default:
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func main() {
	timeout := flag.Float64("timeout", 50, "overall deadline in seconds")
	retention := flag.Duration("offsets-retention", 24*time.Hour,
		"Consumer.Offsets.Retention (0: sarama sends OffsetCommit v1)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: sarama_group BOOTSTRAP [-timeout SECONDS] [-offsets-retention DURATION]\n")
	}
	if len(os.Args) < 2 {
		flag.Usage()
		os.Exit(2)
	}
	bootstrap := os.Args[1]
	if err := flag.CommandLine.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	deadline := time.Now().Add(time.Duration(*timeout * float64(time.Second)))
	time.AfterFunc(time.Until(deadline)+5*time.Second, func() {
		fmt.Printf("FAIL: deadline of %vs passed\n", *timeout)
		os.Exit(3)
	})
	if os.Getenv("STROM_SARAMA_DEBUG") == "1" {
		sarama.Logger = logger{}
	}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "strom-sarama-group"
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = 25 * time.Second
	cfg.Net.WriteTimeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 5
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	cfg.Consumer.Offsets.Retention = *retention
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Max = 20
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRange

	topic := fmt.Sprintf("groups-sarama-%x", time.Now().UnixNano()&0xffffffff)
	group := topic + "-g"

	step("create topic " + topic)
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, cfg)
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		fail("CreateTopic: %v", err)
	}

	producer, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	produce := func(start, count int) {
		var msgs []*sarama.ProducerMessage
		for i := start; i < start+count; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic:     topic,
				Partition: int32(i % partitions),
				Key:       sarama.StringEncoder(strconv.Itoa(i)),
				Value:     sarama.StringEncoder(fmt.Sprintf("v%d", i)),
			})
		}
		if err := producer.SendMessages(msgs); err != nil {
			fail("SendMessages: %v", err)
		}
	}
	step("produce")
	produce(0, records)

	errs := make(chan error, 16)
	checkErrs := func() {
		select {
		case e := <-errs:
			fail("%v", e)
		default:
		}
	}
	newGroup := func() sarama.ConsumerGroup {
		g, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
		if err != nil {
			fail("NewConsumerGroup: %v", err)
		}
		go func() {
			for e := range g.Errors() {
				select {
				case errs <- e:
				default:
				}
			}
		}()
		return g
	}

	st := newState()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var groups []sarama.ConsumerGroup
	for i := 0; i < members; i++ {
		g := newGroup()
		groups = append(groups, g)
		wg.Add(1)
		go member(ctx, &wg, g, topic, &handler{name: fmt.Sprintf("member-%d", i), st: st}, errs)
	}

	step("wait for the group to settle and everything to be consumed")
	var settled map[string][]int32
	for {
		checkErrs()
		if time.Now().After(deadline) {
			st.mu.Lock()
			fail("group did not settle/consume: claims=%v consumed=%d/%d", st.claims, len(st.seen), records)
		}
		st.mu.Lock()
		var owned []int
		full := len(st.claims) == members
		for _, ps := range st.claims {
			if len(ps) == 0 {
				full = false
			}
			for _, p := range ps {
				owned = append(owned, int(p))
			}
		}
		sort.Ints(owned)
		ok := full && len(owned) == partitions
		for i, p := range owned {
			ok = ok && p == i
		}
		if ok && len(st.seen) >= records {
			settled = map[string][]int32{}
			for k, v := range st.claims {
				settled[k] = v
			}
			st.mu.Unlock()
			break
		}
		st.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	st.mu.Lock()
	if len(st.seen) != records {
		fail("consumed %d distinct records, expected %d", len(st.seen), records)
	}
	if st.dup > 0 {
		fmt.Printf("note: %d records delivered twice during rebalances\n", st.dup)
	}
	st.mu.Unlock()

	perPartition := int64(records / partitions)
	// Committed offsets, read back through OffsetFetch v1.
	committed := func() map[int32]int64 {
		ps := make([]int32, partitions)
		for i := range ps {
			ps[i] = int32(i)
		}
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
		if err != nil {
			fail("ListConsumerGroupOffsets: %v", err)
		}
		out := map[int32]int64{}
		for _, p := range ps {
			b := resp.GetBlock(topic, p)
			if b == nil {
				fail("OffsetFetch: no block for partition %d", p)
			}
			if b.Err != sarama.ErrNoError {
				fail("OffsetFetch partition %d: %v", p, b.Err)
			}
			out[p] = b.Offset
		}
		return out
	}
	waitCommitted := func(want int64) {
		var last map[int32]int64
		for time.Now().Before(deadline) {
			checkErrs()
			last = committed()
			ok := true
			for _, off := range last {
				ok = ok && off == want
			}
			if ok {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		fail("committed offsets %v, expected %d everywhere", last, want)
	}
	step("wait for the commits")
	waitCommitted(perPartition)

	step("close the members")
	cancel()
	for _, g := range groups {
		if err := g.Close(); err != nil {
			fail("ConsumerGroup.Close: %v", err)
		}
	}
	wg.Wait()
	checkErrs()

	step("produce later records")
	produce(records, later)
	if err := producer.Close(); err != nil {
		fail("producer Close: %v", err)
	}

	step("resume with a new member")
	rst := newState()
	rctx, rcancel := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	rg := newGroup()
	rwg.Add(1)
	go member(rctx, &rwg, rg, topic, &handler{name: "resumer", st: rst}, errs)
	for {
		checkErrs()
		rst.mu.Lock()
		n := len(rst.keys)
		low := rst.minSeen
		claims := rst.claims["resumer"]
		rst.mu.Unlock()
		if low >= 0 && low < perPartition {
			fail("resumer re-read a committed record (offset %d)", low)
		}
		if n >= later && len(claims) == partitions {
			break
		}
		if time.Now().After(deadline) {
			fail("resumer got %d of %d later records (claims %v)", n, later, claims)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rst.mu.Lock()
	keys := append([]int(nil), rst.keys...)
	rst.mu.Unlock()
	sort.Ints(keys)
	if len(keys) != later {
		fail("resumer got %d records, expected %d", len(keys), later)
	}
	for i, k := range keys {
		if k != records+i {
			fail("resumer got unexpected records: %v", keys)
		}
	}
	waitCommitted(int64((records + later) / partitions))
	rcancel()
	if err := rg.Close(); err != nil {
		fail("ConsumerGroup.Close: %v", err)
	}
	rwg.Wait()
	checkErrs()

	commitVersion := 2
	if *retention == 0 {
		commitVersion = 1
	}
	fmt.Printf("ALL OK sarama %s members=%d partitions=%d records=%d+%d assignment=%v "+
		"apis=FindCoordinator=v0,JoinGroup=v1,SyncGroup=v0,Heartbeat=v0,LeaveGroup=v0,OffsetCommit=v%d,OffsetFetch=v1\n",
		saramaVersion, members, partitions, records, later, settled, commitVersion)
}

type logger struct{}

func (logger) Print(v ...interface{})                 { fmt.Fprint(os.Stderr, v...) }
func (logger) Printf(format string, v ...interface{}) { fmt.Fprintf(os.Stderr, format, v...) }
func (logger) Println(v ...interface{})               { fmt.Fprintln(os.Stderr, v...) }
