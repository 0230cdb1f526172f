"""Baseline (c) of the throughput bench: the consumer a city team would write in Python.

Usage: pika_consumer.py AMQP_URL QUEUE N PREFETCH
Consumes N messages with manual ack and the given prefetch; prints the seconds
from connecting to the last ack.
"""
import sys
import time

import pika


def main() -> None:
    url, queue, n, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    started = time.perf_counter()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    handled = 0

    def on_message(ch, method, _properties, _body):
        nonlocal handled
        ch.basic_ack(delivery_tag=method.delivery_tag)
        handled += 1
        if handled == n:
            ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=False)
    channel.start_consuming()
    elapsed = time.perf_counter() - started
    connection.close()
    print(f"{elapsed:.6f}")


if __name__ == "__main__":
    main()
