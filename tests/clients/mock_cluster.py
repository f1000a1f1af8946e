#!/usr/bin/env python3
"""Start librdkafka's built-in mock Kafka cluster and print its bootstrap
address on the first line of stdout; keep it up for SECS seconds (default
600) or until killed.

Only for checking the round-trip programs themselves while Strom's broker is
not usable: the mock speaks the Kafka protocol over real TCP on 127.0.0.1,
but it has no CreateTopics (its metadata names no usable controller) and it
auto-creates topics with 4 partitions, so run the programs with
`--no-create --partitions 4`, e.g.

    BS=$(python3 tests/clients/mock_cluster.py 900 | head -1) &
    python3 tests/clients/kafka_python_roundtrip.py "$BS" --no-create --partitions 4

Needs confluent-kafka (installed by .ci/run).
"""

import sys
import time

from confluent_kafka.admin import AdminClient


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
    admin = AdminClient({"bootstrap.servers": "", "test.mock.num.brokers": 1, "log_level": 3})
    md = admin.list_topics(timeout=10)
    broker = next(iter(md.brokers.values()))
    print(f"{broker.host}:{broker.port}", flush=True)
    time.sleep(secs)
    del admin


if __name__ == "__main__":
    main()
