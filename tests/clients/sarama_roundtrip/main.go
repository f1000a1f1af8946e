// Round trip through sarama (Go), the version Debian packages
// (golang-github-shopify-sarama-dev, sarama 1.22.1 on bookworm).
//
// Usage: sarama_roundtrip BOOTSTRAP [-codecs none,gzip,...] [-records N]
//
// Per codec: ClusterAdmin.CreateTopic (3 partitions), AsyncProducer with
// Return.Successes (each success carries the partition and offset the record
// was acked at), a plain Consumer reading all 3 partitions from OffsetOldest,
// then the same checks as tests/clients/roundtrip_common.py: key, value,
// headers, timestamp, partition and offset identical, per-partition order kept.
//
// Builds OFFLINE in GOPATH mode against Debian's packaged sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= \
//	    go build -o sarama_roundtrip ./tests/clients/sarama_roundtrip
//
// Exit codes: 0 ok; 1 a check failed or the client returned an error;
// 2 bad usage; 3 the overall deadline passed.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// Set with -ldflags "-X main.saramaVersion=..." by the test (Debian's
// sarama has no version constant).
var saramaVersion = "unknown"

const (
	client      = "sarama"
	exitFailed  = 1
	exitUsage   = 2
	exitTimeout = 3
)

var allCodecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// zstd is left out of the default list: sarama 1.22.1 sends Produce v3 and
// Fetch v4 whatever the codec, while the Kafka protocol only allows zstd from
// Produce v7 / Fetch v10 (a Kafka broker answers UNSUPPORTED_COMPRESSION_TYPE).
// Ask for it explicitly with -codecs ...,zstd to try anyway.
var defaultCodecs = []string{"none", "gzip", "snappy", "lz4"}

var (
	partitions int32 = 3
	stepMu     sync.Mutex
	curStep    = "starting"
)

func step(s string) {
	stepMu.Lock()
	curStep = s
	stepMu.Unlock()
	fmt.Fprintf(os.Stderr, "... %s\n", s)
}

type record struct {
	index     int
	key       []byte
	value     []byte
	headers   []sarama.RecordHeader
	timestamp int64 // ms since epoch
}

type ack struct {
	partition int32
	offset    int64
	ok        bool
}

type consumed struct {
	partition int32
	offset    int64
	key       []byte
	value     []byte
	headers   []sarama.RecordHeader
	timestamp int64
}

func nowMs() int64 { return time.Now().UnixNano() / int64(time.Millisecond) }

func msToTime(ms int64) time.Time { return time.Unix(0, ms*int64(time.Millisecond)) }

func timeToMs(t time.Time) int64 { return t.UnixNano() / int64(time.Millisecond) }

// makeRecords mirrors roundtrip_common.make_records: 1000 distinct keys,
// compressible text plus binary noise, 1 header (odd records 2, the second
// binary), explicit non-monotonic timestamps 10-20 minutes in the past.
func makeRecords(n int, codec string) []record {
	rng := rand.New(rand.NewSource(int64(len(codec)) * 7919))
	base := nowMs() - 20*60*1000
	span := int64(10 * 60 * 1000)
	recs := make([]record, n)
	for i := 0; i < n; i++ {
		key := []byte(fmt.Sprintf("key-%04d", i%1000))
		text := bytes.Repeat([]byte(fmt.Sprintf("record %d codec %s ", i, codec)), 1+i%5)
		noise := make([]byte, rng.Intn(64))
		rng.Read(noise)
		value := append(text, noise...)
		headers := []sarama.RecordHeader{{Key: []byte("trace-id"), Value: []byte(fmt.Sprintf("trace-%08d", i))}}
		if i%2 == 1 {
			bin := make([]byte, 6)
			binary.BigEndian.PutUint32(bin[0:4], uint32(i))
			binary.BigEndian.PutUint16(bin[4:6], uint16(i&0xFFFF))
			bin = append(bin, 0x00, 0xff)
			headers = append(headers, sarama.RecordHeader{Key: []byte("bin"), Value: bin})
		}
		ts := base + (int64(i)*7919)%span
		recs[i] = record{index: i, key: key, value: value, headers: headers, timestamp: ts}
	}
	return recs
}

func codecOf(name string) sarama.CompressionCodec {
	switch name {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

func newConfig(stepTimeout time.Duration) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "strom-roundtrip-sarama"
	// Sarama 1.22 does not negotiate versions: this picks Produce v3,
	// Fetch v4, Metadata v5, CreateTopics v2, ListOffsets v1 (headers need
	// >= 0.11, i.e. record batch v2).
	cfg.Version = sarama.V2_1_0_0
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = stepTimeout
	cfg.Net.WriteTimeout = stepTimeout
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 500 * time.Millisecond
	cfg.Admin.Timeout = 10 * time.Second
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	cfg.Producer.Timeout = stepTimeout
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

func topicName(codec string) string {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	return fmt.Sprintf("roundtrip-sarama-%s-%06x", codec, r.Intn(1<<24))
}

type runner struct {
	bootstrap   string
	stepTimeout time.Duration
	noCreate    bool
}

func (r *runner) createTopic(topic string) error {
	cfg := newConfig(r.stepTimeout)
	if !r.noCreate {
		step(fmt.Sprintf("creating topic %s (ClusterAdmin.CreateTopic) at %s", topic, r.bootstrap))
		admin, err := sarama.NewClusterAdmin([]string{r.bootstrap}, cfg)
		if err != nil {
			return fmt.Errorf("NewClusterAdmin(%s): %v", r.bootstrap, err)
		}
		err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
		admin.Close()
		if err != nil {
			return fmt.Errorf("CreateTopic(%s): %v", topic, err)
		}
	}
	step(fmt.Sprintf("waiting for metadata of %s to show %d partitions", topic, partitions))
	c, err := sarama.NewClient([]string{r.bootstrap}, cfg)
	if err != nil {
		return fmt.Errorf("NewClient(%s): %v", r.bootstrap, err)
	}
	defer c.Close()
	deadline := time.Now().Add(r.stepTimeout)
	last := ""
	for {
		if err := c.RefreshMetadata(topic); err != nil {
			last = err.Error()
		} else if ps, err := c.Partitions(topic); err != nil {
			last = err.Error()
		} else if int32(len(ps)) != partitions {
			last = fmt.Sprintf("%d partitions", len(ps))
		} else {
			leaders := true
			for _, p := range ps {
				if _, err := c.Leader(topic, p); err != nil {
					leaders = false
					last = fmt.Sprintf("partition %d: %v", p, err)
				}
			}
			if leaders {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("metadata of %s not ready within %v: %s", topic, r.stepTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *runner) produce(topic, codec string, recs []record) ([]ack, error) {
	cfg := newConfig(r.stepTimeout)
	cfg.Producer.Compression = codecOf(codec)
	step(fmt.Sprintf("producing %d records to %s with %s", len(recs), topic, codec))
	p, err := sarama.NewAsyncProducer([]string{r.bootstrap}, cfg)
	if err != nil {
		return nil, fmt.Errorf("NewAsyncProducer: %v", err)
	}
	acks := make([]ack, len(recs))
	var errs []string
	pending := len(recs)
	deadline := time.After(r.stepTimeout)
	next := 0
	for pending > 0 {
		var in chan<- *sarama.ProducerMessage
		var msg *sarama.ProducerMessage
		if next < len(recs) {
			rec := recs[next]
			in = p.Input()
			msg = &sarama.ProducerMessage{
				Topic:     topic,
				Key:       sarama.ByteEncoder(rec.key),
				Value:     sarama.ByteEncoder(rec.value),
				Headers:   rec.headers,
				Timestamp: msToTime(rec.timestamp),
				Metadata:  rec.index,
			}
		}
		select {
		case in <- msg:
			next++
		case m := <-p.Successes():
			i := m.Metadata.(int)
			acks[i] = ack{partition: m.Partition, offset: m.Offset, ok: true}
			pending--
		case e := <-p.Errors():
			i := e.Msg.Metadata.(int)
			errs = append(errs, fmt.Sprintf("record #%d: %v", i, e.Err))
			pending--
		case <-deadline:
			p.Close()
			return nil, fmt.Errorf("timeout: %d of %d records unacknowledged after %v", pending, len(recs), r.stepTimeout)
		}
	}
	if err := p.Close(); err != nil && len(errs) == 0 {
		errs = append(errs, fmt.Sprintf("close: %v", err))
	}
	if len(errs) > 0 {
		n := len(errs)
		if n > 5 {
			errs = errs[:5]
		}
		return nil, fmt.Errorf("%d send errors, first: %s", n, strings.Join(errs, "; "))
	}
	return acks, nil
}

func (r *runner) consume(topic string, acks []ack) ([]consumed, error) {
	ends := map[int32]int64{}
	for _, a := range acks {
		if a.ok && a.offset >= ends[a.partition] {
			ends[a.partition] = a.offset
		}
	}
	cfg := newConfig(r.stepTimeout)
	step(fmt.Sprintf("consuming %s from the beginning of %d partitions", topic, partitions))
	c, err := sarama.NewConsumer([]string{r.bootstrap}, cfg)
	if err != nil {
		return nil, fmt.Errorf("NewConsumer: %v", err)
	}
	defer c.Close()
	type item struct {
		m   *sarama.ConsumerMessage
		err error
	}
	ch := make(chan item, 1024)
	var pcs []sarama.PartitionConsumer
	for p := int32(0); p < partitions; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			for _, pc := range pcs {
				pc.AsyncClose()
			}
			return nil, fmt.Errorf("ConsumePartition(%s, %d): %v", topic, p, err)
		}
		pcs = append(pcs, pc)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				ch <- item{m: m}
			}
		}(pc)
		go func(pc sarama.PartitionConsumer) {
			for e := range pc.Errors() {
				ch <- item{err: e}
			}
		}(pc)
	}
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
	}()
	var out []consumed
	last := map[int32]int64{}
	enough := func() bool {
		for p, end := range ends {
			l, ok := last[p]
			if !ok || l < end {
				return false
			}
		}
		return true
	}
	deadline := time.After(r.stepTimeout)
	for !enough() {
		select {
		case it := <-ch:
			if it.err != nil {
				return nil, fmt.Errorf("consumer error: %v", it.err)
			}
			m := it.m
			var hs []sarama.RecordHeader
			for _, h := range m.Headers {
				hs = append(hs, *h)
			}
			out = append(out, consumed{
				partition: m.Partition, offset: m.Offset, key: m.Key, value: m.Value,
				headers: hs, timestamp: timeToMs(m.Timestamp),
			})
			if l, ok := last[m.Partition]; !ok || m.Offset > l {
				last[m.Partition] = m.Offset
			}
		case <-deadline:
			return nil, fmt.Errorf("timeout: consumed %d of %d records within %v", len(out), len(acks), r.stepTimeout)
		}
	}
	return out, nil
}

func headersEqual(a, b []sarama.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func fmtHeaders(hs []sarama.RecordHeader) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%q=%q", h.Key, h.Value))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func short(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return fmt.Sprintf("%q", b)
}

type pos struct {
	p int32
	o int64
}

// verify mirrors roundtrip_common.verify.
func verify(recs []record, acks []ack, got []consumed) []string {
	const maxErrors = 20
	var errs []string
	add := func(format string, a ...interface{}) {
		if len(errs) < maxErrors {
			errs = append(errs, fmt.Sprintf(format, a...))
		} else if len(errs) == maxErrors {
			errs = append(errs, "... (more errors not shown)")
		}
	}
	byPos := map[pos]*record{}
	lastAcked := map[int32]int64{}
	keyPart := map[string]int32{}
	for i := range recs {
		rec := &recs[i]
		a := acks[i]
		if !a.ok || a.offset < 0 {
			add("record #%d has no valid ack", rec.index)
			continue
		}
		if a.partition < 0 || a.partition >= partitions {
			add("record #%d acked at partition %d, topic has %d", rec.index, a.partition, partitions)
		}
		k := pos{a.partition, a.offset}
		if other, dup := byPos[k]; dup {
			add("records #%d and #%d both acked at %d/%d", other.index, rec.index, a.partition, a.offset)
		}
		byPos[k] = rec
		if l, ok := lastAcked[a.partition]; ok && a.offset <= l {
			add("produce order lost: record #%d acked at %d/%d after an earlier record was acked at %d/%d",
				rec.index, a.partition, a.offset, a.partition, l)
		}
		if l, ok := lastAcked[a.partition]; !ok || a.offset > l {
			lastAcked[a.partition] = a.offset
		}
		if p, ok := keyPart[string(rec.key)]; ok && p != a.partition {
			add("key %q acked on partitions %d and %d", rec.key, p, a.partition)
		}
		keyPart[string(rec.key)] = a.partition
	}
	if len(errs) > 0 {
		return errs
	}
	seen := map[pos]bool{}
	lastConsumed := map[int32]int64{}
	for _, c := range got {
		if l, ok := lastConsumed[c.partition]; ok && c.offset <= l {
			add("partition %d: offset %d consumed after %d (order not kept / duplicate)", c.partition, c.offset, l)
		}
		if l, ok := lastConsumed[c.partition]; !ok || c.offset > l {
			lastConsumed[c.partition] = c.offset
		}
		rec, ok := byPos[pos{c.partition, c.offset}]
		if !ok {
			add("consumed unexpected record at %d/%d: key=%q value=%s", c.partition, c.offset, c.key, short(c.value))
			continue
		}
		seen[pos{c.partition, c.offset}] = true
		where := fmt.Sprintf("record #%d at %d/%d", rec.index, c.partition, c.offset)
		if !bytes.Equal(c.key, rec.key) {
			add("%s: key %q != produced %q", where, c.key, rec.key)
		}
		if !bytes.Equal(c.value, rec.value) {
			add("%s: value differs (got %d bytes %s..., produced %d bytes %s...)", where, len(c.value), short(c.value), len(rec.value), short(rec.value))
		}
		if !headersEqual(c.headers, rec.headers) {
			add("%s: headers %s != produced %s", where, fmtHeaders(c.headers), fmtHeaders(rec.headers))
		}
		if c.timestamp != rec.timestamp {
			add("%s: timestamp %d != produced %d", where, c.timestamp, rec.timestamp)
		}
	}
	var missing []pos
	for k := range byPos {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	sort.Slice(missing, func(i, j int) bool {
		if missing[i].p != missing[j].p {
			return missing[i].p < missing[j].p
		}
		return missing[i].o < missing[j].o
	})
	for _, k := range missing {
		add("record #%d acked at %d/%d was never consumed", byPos[k].index, k.p, k.o)
	}
	return errs
}

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintf(os.Stderr, "usage: %s BOOTSTRAP [-codecs none,gzip,snappy,lz4] [-records N] [-timeout SECS] [-step-timeout SECS] [-no-create -partitions N]\n", os.Args[0])
		os.Exit(exitUsage)
	}
	bootstrap := os.Args[1]
	fs := flag.NewFlagSet("sarama_roundtrip", flag.ContinueOnError)
	codecsFlag := fs.String("codecs", strings.Join(defaultCodecs, ","), "comma-separated codecs (zstd only on request, see source)")
	records := fs.Int("records", 10000, "records per codec")
	timeoutS := fs.Float64("timeout", envFloat("STROM_CLIENT_TIMEOUT", 300), "overall deadline in seconds")
	stepS := fs.Float64("step-timeout", 60, "deadline of one step in seconds")
	noCreate := fs.Bool("no-create", false, "rely on topic auto-creation instead of CreateTopics (mock cluster checks)")
	parts := fs.Int("partitions", 3, "partitions per topic (only with -no-create)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(exitUsage)
	}
	partitions = int32(*parts)
	var codecs []string
	for _, c := range strings.Split(*codecsFlag, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		known := false
		for _, k := range allCodecs {
			known = known || k == c
		}
		if !known {
			fmt.Fprintf(os.Stderr, "unknown codec %q; known: %s\n", c, strings.Join(allCodecs, ","))
			os.Exit(exitUsage)
		}
		codecs = append(codecs, c)
	}
	if *records < 1 {
		fmt.Fprintln(os.Stderr, "-records must be >= 1")
		os.Exit(exitUsage)
	}
	if !strings.Contains(*codecsFlag, "zstd") {
		fmt.Println("note: sarama codec zstd not run: sarama 1.22.1 sends it in Produce v3 / reads it with Fetch v4, which the Kafka protocol forbids (needs v7 / v10)")
	}
	if os.Getenv("STROM_SARAMA_DEBUG") == "1" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}

	overall := time.Duration(*timeoutS * float64(time.Second))
	time.AfterFunc(overall, func() {
		stepMu.Lock()
		s := curStep
		stepMu.Unlock()
		fmt.Fprintf(os.Stderr, "TIMEOUT: %s round trip did not finish within %v; stuck at step: %s\n", client, overall, s)
		os.Exit(exitTimeout)
	})

	r := &runner{bootstrap: bootstrap, stepTimeout: time.Duration(*stepS * float64(time.Second)), noCreate: *noCreate}
	version := "sarama " + saramaVersion
	var failed, done []string
	for _, codec := range codecs {
		topic := topicName(codec)
		t0 := time.Now()
		fail := func(err error) {
			fmt.Fprintf(os.Stderr, "FAIL %s codec=%s topic=%s: %v\n", version, codec, topic, err)
			failed = append(failed, codec)
		}
		if err := r.createTopic(topic); err != nil {
			fail(err)
			if len(done) == 0 {
				break // the broker is not usable at all; do not repeat the wait per codec
			}
			continue
		}
		recs := makeRecords(*records, codec)
		acks, err := r.produce(topic, codec, recs)
		if err != nil {
			fail(err)
			continue
		}
		got, err := r.consume(topic, acks)
		if err != nil {
			fail(err)
			continue
		}
		if errs := verify(recs, acks, got); len(errs) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL %s codec=%s topic=%s: %d problem(s):\n", version, codec, topic, len(errs))
			for _, e := range errs {
				fmt.Fprintf(os.Stderr, "  - %s\n", e)
			}
			failed = append(failed, codec)
			continue
		}
		counts := make([]int, partitions)
		for _, c := range got {
			if c.partition >= 0 && c.partition < partitions {
				counts[c.partition]++
			}
		}
		fmt.Printf("OK %s codec=%s topic=%s produced=%d consumed=%d per_partition=%v in %.1fs\n",
			version, codec, topic, len(recs), len(got), counts, time.Since(t0).Seconds())
		done = append(done, codec)
	}
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "FAILED %s: codecs failed: %s; passed: %s\n", version, strings.Join(failed, ","), strings.Join(done, ","))
		os.Exit(exitFailed)
	}
	fmt.Printf("ALL OK %s codecs=%s records_per_codec=%d\n", version, strings.Join(done, ","), *records)
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		var f float64
		if _, err := fmt.Sscanf(v, "%g", &f); err == nil {
			return f
		}
	}
	return def
}
