#!/usr/bin/env python3
"""The admin APIs through confluent-kafka-python's AdminClient (librdkafka).

Usage: confluent_admin.py BOOTSTRAP [--timeout SECS] [--step-timeout SECS]

Against a fresh broker, in order, checking every answer:
create_topics (validate_only, with configs, and refusals), describe_configs
(topic and broker), alter_configs and incremental_alter_configs (then
describe_configs again to see the change), create_partitions, produce +
delete_records (low watermarks, then ListOffsets agrees), describe_cluster,
delete_topics and list_topics.

Prints `OK <step>` per step and `ALL OK confluent-kafka admin ...` at the end.
Exit codes as roundtrip_common: 0 passed, 1 a check failed or the client
raised, 3 the deadline passed, 4 confluent_kafka is missing.
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rt  # noqa: E402

CLIENT = "confluent-kafka admin"


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bootstrap")
    p.add_argument("--timeout", type=float, default=float(os.environ.get("STROM_CLIENT_TIMEOUT", "120")))
    p.add_argument("--step-timeout", type=float, default=30.0)
    args = p.parse_args()
    try:
        import confluent_kafka
        from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
        from confluent_kafka.admin import (
            AdminClient,
            AlterConfigOpType,
            ConfigEntry,
            ConfigResource,
            ConfigSource,
            NewPartitions,
            NewTopic,
            ResourceType,
        )
    except ImportError as e:
        rt.missing(CLIENT, f"python module confluent_kafka not importable: {e}")
        return
    rt.start_watchdog(CLIENT, args.timeout)
    version = f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
    bootstrap = args.bootstrap
    step_s = args.step_timeout
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "strom-admin-test"})
    opts = {"request_timeout": step_s}

    def result(future):
        return future.result(timeout=step_s)

    def error_of(future):
        """The KafkaError a future failed with (fails the check if it succeeded)."""
        try:
            value = future.result(timeout=step_s)
        except KafkaException as e:
            return e.args[0]
        raise CheckFailed(f"expected an error, got {value!r}")

    def topic_metadata(name):
        return admin.list_topics(timeout=step_s).topics.get(name)

    def describe_topic(name):
        res = ConfigResource(ResourceType.TOPIC, name)
        return result(admin.describe_configs([res], **opts)[res])

    def ok(what):
        print(f"OK {what}", flush=True)

    rt.step(f"fetching metadata from {bootstrap}")
    md = admin.list_topics(timeout=step_s)
    node_id = next(iter(md.brokers))
    check(md.controller_id == node_id, f"controller {md.controller_id} is not broker {node_id}")
    ok(f"list_topics: broker {node_id}, controller {md.controller_id}")

    rt.step("create_topics validate_only")
    fs = admin.create_topics(
        [NewTopic("admin-validated", num_partitions=2, replication_factor=1)],
        validate_only=True,
        **opts,
    )
    check(result(fs["admin-validated"]) is None, "validate_only create failed")
    check(topic_metadata("admin-validated") is None, "validate_only created the topic")
    ok("create_topics validate_only")

    rt.step("create_topics")
    fs = admin.create_topics(
        [
            NewTopic(
                "admin-a",
                num_partitions=2,
                replication_factor=1,
                config={"retention.ms": "3600000", "cleanup.policy": "delete"},
            ),
            NewTopic("admin-b", num_partitions=1, replication_factor=-1),
            NewTopic("admin-rf3", num_partitions=1, replication_factor=3),
            NewTopic("admin-badcfg", num_partitions=1, replication_factor=1, config={"retention.ms": "soon"}),
        ],
        **opts,
    )
    result(fs["admin-a"])
    result(fs["admin-b"])
    err = error_of(fs["admin-rf3"])
    check(err.code() == KafkaError.INVALID_REPLICATION_FACTOR, f"rf 3: {err}")
    err = error_of(fs["admin-badcfg"])
    check(err.code() == KafkaError.INVALID_CONFIG, f"bad config: {err}")
    err = error_of(admin.create_topics([NewTopic("admin-a", 1, 1)], **opts)["admin-a"])
    check(err.code() == KafkaError.TOPIC_ALREADY_EXISTS, f"existing topic: {err}")
    t = topic_metadata("admin-a")
    check(t is not None and len(t.partitions) == 2, f"admin-a metadata: {t}")
    ok("create_topics (+ already exists, bad replication factor, bad config)")

    rt.step("describe_configs topic")
    configs = describe_topic("admin-a")
    retention = configs["retention.ms"]
    check(retention.value == "3600000", f"retention.ms = {retention.value}")
    check(retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, f"retention.ms source {retention.source}")
    segment = configs["segment.bytes"]
    check(segment.value == "1073741824", f"segment.bytes = {segment.value}")
    check(segment.source == ConfigSource.DEFAULT_CONFIG.value, f"segment.bytes source {segment.source}")
    check(not segment.is_read_only, "topic configs are not read-only")
    res = ConfigResource(ResourceType.TOPIC, "admin-missing")
    err = error_of(admin.describe_configs([res], **opts)[res])
    check(err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, f"unknown topic: {err}")
    ok(f"describe_configs topic ({len(configs)} configs)")

    rt.step("describe_configs broker")
    res = ConfigResource(ResourceType.BROKER, str(node_id))
    broker_configs = result(admin.describe_configs([res], **opts)[res])
    partitions = broker_configs["num.partitions"]
    check(partitions.value == "1", f"num.partitions = {partitions.value}")
    check(partitions.is_read_only, "broker configs are read-only")
    check(partitions.source == ConfigSource.DEFAULT_CONFIG.value, f"num.partitions source {partitions.source}")
    check(broker_configs["node.id"].value == str(node_id), "node.id")
    check(broker_configs["log.retention.hours"].value == "168", "log.retention.hours")
    ok(f"describe_configs broker ({len(broker_configs)} configs)")

    rt.step("alter_configs")
    res = ConfigResource(ResourceType.TOPIC, "admin-a", set_config={"retention.ms": "7200000"})
    result(admin.alter_configs([res], **opts)[res])
    configs = describe_topic("admin-a")
    check(configs["retention.ms"].value == "7200000", f"after alter: retention.ms = {configs['retention.ms'].value}")
    # AlterConfigs replaces the whole set: cleanup.policy is back to its default.
    check(
        configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value,
        f"after alter: cleanup.policy source {configs['cleanup.policy'].source}",
    )
    res = ConfigResource(ResourceType.BROKER, str(node_id), set_config={"num.partitions": "3"})
    err = error_of(admin.alter_configs([res], **opts)[res])
    check(err.code() == KafkaError.INVALID_REQUEST, f"broker alter: {err}")
    ok("alter_configs (+ broker refused)")

    rt.step("incremental_alter_configs")
    res = ConfigResource(
        ResourceType.TOPIC,
        "admin-a",
        incremental_configs=[
            ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    result(admin.incremental_alter_configs([res], **opts)[res])
    configs = describe_topic("admin-a")
    check(configs["segment.ms"].value == "600000", f"segment.ms = {configs['segment.ms'].value}")
    check(configs["cleanup.policy"].value == "delete,compact", f"cleanup.policy = {configs['cleanup.policy'].value}")
    check(configs["retention.ms"].value == "604800000", f"retention.ms = {configs['retention.ms'].value}")
    check(
        configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value,
        f"retention.ms source {configs['retention.ms'].source}",
    )
    res = ConfigResource(
        ResourceType.TOPIC,
        "admin-a",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT)
        ],
    )
    result(admin.incremental_alter_configs([res], **opts)[res])
    check(describe_topic("admin-a")["cleanup.policy"].value == "delete", "after SUBTRACT")
    res = ConfigResource(
        ResourceType.BROKER,
        str(node_id),
        incremental_configs=[ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)],
    )
    err = error_of(admin.incremental_alter_configs([res], **opts)[res])
    check(err.code() == KafkaError.INVALID_REQUEST, f"broker incremental alter: {err}")
    ok("incremental_alter_configs (SET, APPEND, DELETE, SUBTRACT; broker refused)")

    rt.step("create_partitions")
    result(admin.create_partitions([NewPartitions("admin-a", 4)], **opts)["admin-a"])
    t = topic_metadata("admin-a")
    check(len(t.partitions) == 4, f"admin-a has {len(t.partitions)} partitions")
    err = error_of(admin.create_partitions([NewPartitions("admin-a", 3)], **opts)["admin-a"])
    check(err.code() == KafkaError.INVALID_PARTITIONS, f"shrink: {err}")
    fs = admin.create_partitions([NewPartitions("admin-a", 6)], validate_only=True, **opts)
    result(fs["admin-a"])
    check(len(topic_metadata("admin-a").partitions) == 4, "validate_only added partitions")
    ok("create_partitions (+ shrink refused, validate_only)")

    rt.step("produce 30 records to admin-b")
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": int(step_s * 1000)})
    failures = []
    for i in range(30):
        producer.produce("admin-b", value=b"v%d" % i, partition=0, on_delivery=lambda e, m: e and failures.append(e))
    check(producer.flush(step_s) == 0, "produce did not finish")
    check(not failures, f"delivery failures: {failures[:3]}")

    rt.step("delete_records")
    tp = TopicPartition("admin-b", 0, 10)
    deleted = result(admin.delete_records([tp], **opts)[tp])
    check(deleted.low_watermark == 10, f"low watermark {deleted.low_watermark}")
    tp = TopicPartition("admin-b", 0, confluent_kafka.OFFSET_END)
    deleted = result(admin.delete_records([tp], **opts)[tp])
    check(deleted.low_watermark == 30, f"low watermark after OFFSET_END {deleted.low_watermark}")
    tp = TopicPartition("admin-b", 0, 31)
    err = error_of(admin.delete_records([tp], **opts)[tp])
    check(err.code() == KafkaError.OFFSET_OUT_OF_RANGE, f"beyond the high watermark: {err}")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "strom-admin-test"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition("admin-b", 0), timeout=step_s)
    finally:
        consumer.close()
    check((low, high) == (30, 30), f"watermarks after delete_records: {(low, high)}")
    ok("delete_records (offset, OFFSET_END, out of range; ListOffsets agrees)")

    rt.step("describe_cluster")
    cluster = admin.describe_cluster(include_authorized_operations=True, request_timeout=step_s).result(
        timeout=step_s
    )
    check(cluster.cluster_id, "no cluster id")
    check(cluster.controller is not None and cluster.controller.id == node_id, f"controller {cluster.controller}")
    check([n.id for n in cluster.nodes] == [node_id], f"nodes {cluster.nodes}")
    host, port = bootstrap.rsplit(":", 1)
    check((cluster.nodes[0].host, cluster.nodes[0].port) == (host, int(port)), f"node {cluster.nodes[0]}")
    ops = {str(op) for op in cluster.authorized_operations or []}
    check(any("DESCRIBE" in op for op in ops) and len(ops) == 7, f"authorized operations {ops}")
    ok(f"describe_cluster (cluster id {cluster.cluster_id})")

    rt.step("delete_topics")
    fs = admin.delete_topics(["admin-a", "admin-b", "admin-missing"], operation_timeout=step_s, **opts)
    result(fs["admin-a"])
    result(fs["admin-b"])
    err = error_of(fs["admin-missing"])
    check(err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, f"unknown topic: {err}")
    deadline = time.monotonic() + step_s
    while True:
        left = set(admin.list_topics(timeout=step_s).topics) & {"admin-a", "admin-b"}
        if not left:
            break
        check(time.monotonic() < deadline, f"still listed after delete: {left}")
        time.sleep(0.2)
    ok("delete_topics (+ unknown topic), list_topics no longer shows them")

    print(f"ALL OK {CLIENT} {version}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"FAIL {CLIENT}: {e}", flush=True)
        sys.exit(rt.EXIT_FAILED)
