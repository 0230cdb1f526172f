#!/usr/bin/env python3
"""Summary of a local city demo run (scripts/demo.sh), read from the running
processes: the gates' and functions' /metrics, the map's /api/incidents and the
webhook sink's /posts. Prints readable tables, then checks what the demo
promises; exits 1 when a check fails. Python 3 standard library only.
"""

import argparse
import json
import re
import sys
import urllib.request
from collections import defaultdict

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
PINNED = re.compile(r'trace_id=(?P<trace>[0-9a-f]+).*pinned incident=(?P<incident>\S+)')
ALERT = re.compile(r'trace_id=(?P<trace>[0-9a-f]+).*alerted a new incident '
                   r'camera=(?P<camera>\S+) event_type=(?P<event_type>\S+) incident=(?P<incident>\S+)')


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


def metrics(url):
    """{name: [(labels, value)]} from a Prometheus/OpenMetrics text page."""
    samples = defaultdict(list)
    for line in get(url.rstrip("/") + "/metrics").splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            samples[name].append((dict(LABEL.findall(labels or "")), float(value)))
    return samples


def total(samples, name, **wanted):
    return sum(v for labels, v in samples.get(name, []) if all(labels.get(k) == w for k, w in wanted.items()))


def by_label(samples, name, label):
    out = defaultdict(float)
    for labels, value in samples.get(name, []):
        out[labels.get(label, "")] += value
    return out


def table(rows, header):
    """Prints rows under header: numbers right-aligned, text left-aligned."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    print("    " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row in rows:
        print("    " + "  ".join(str(c).rjust(w) if isinstance(c, int) else str(c).ljust(w)
                               for c, w in zip(row, widths)).rstrip())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gate", action="append", default=[], metavar="REGION=URL")
    parser.add_argument("--detector", metavar="URL")
    parser.add_argument("--detector-log", metavar="PATH",
                        help="the detector's log: its alerts, while its own metrics are not on /metrics")
    parser.add_argument("--map-pin-log", metavar="PATH",
                        help="map-pin's log: to follow each alert's trace id into map-pin")
    parser.add_argument("--people-camera", action="append", default=[], metavar="ID",
                        help="a camera that sees only people (COCO `person` maps to no event)")
    parser.add_argument("--function", action="append", default=[], metavar="NAME=URL")
    parser.add_argument("--map", required=True, metavar="URL")
    parser.add_argument("--sink", required=True, metavar="URL")
    parser.add_argument("--still-camera", action="append", default=[], metavar="ID")
    parser.add_argument("--accident-camera", action="append", default=[], metavar="ID")
    args = parser.parse_args()
    failures = []

    def check(ok, message):
        print(f"    [{'ok' if ok else 'FAILED'}] {message}")
        if not ok:
            failures.append(message)

    print("\n== cameras: frames read vs forwarded by the motion gates (gate /metrics)")
    rows = []
    forwarded_by_camera = {}
    for spec in args.gate:
        region, url = spec.split("=", 1)
        gate = metrics(url)
        read = by_label(gate, "safecity_gate_frames_read_total", "camera")
        forwarded = by_label(gate, "safecity_gate_frames_forwarded_total", "camera")
        published = by_label(gate, "safecity_gate_frames_published_total", "camera")
        dropped = by_label(gate, "safecity_gate_frames_dropped_total", "camera")
        for camera in sorted(read):
            forwarded_by_camera[camera] = forwarded[camera]
            ratio = 100 * forwarded[camera] / read[camera] if read[camera] else 0
            rows.append([camera, region, int(read[camera]), int(forwarded[camera]),
                         int(published[camera]), int(dropped[camera]), f"{ratio:.1f} %"])
    table(rows, ["camera", "region", "read", "forwarded", "published", "dropped", "forwarded/read"])
    read_total = sum(r[2] for r in rows)
    forwarded_total = sum(r[3] for r in rows)
    if read_total:
        print(f"    the gates kept {read_total - forwarded_total} of {read_total} frames "
              f"({100 * (read_total - forwarded_total) / read_total:.0f} %) away from the detector")

    alerts = {}
    alerted = []
    if args.detector:
        print("\n== detector (detector /metrics and log)")
        detector = metrics(args.detector)
        frames = total(detector, "safecity_events_succeeded_total", event_type="frames")
        rejected = total(detector, "safecity_events_dead_lettered_total")
        seconds = total(detector, "safecity_handle_duration_seconds_sum", event_type="frames")
        handled = total(detector, "safecity_handle_duration_seconds_count", event_type="frames")
        print(f"    frames handled: {int(frames)} ({int(rejected)} dead-lettered)")
        if handled:
            print(f"    {1000 * seconds / handled:.0f} ms per frame on average from delivery to verdict "
                  "(waiting for the model included)")
        if "safecity_detector_alerts_total" in detector:
            alerts = by_label(detector, "safecity_detector_alerts_total", "event_type")
        if args.detector_log:
            with open(args.detector_log, encoding="utf-8") as log:
                for line in log:
                    match = ALERT.search(line)
                    if match:
                        alerted.append(match.groupdict())
            if "safecity_detector_alerts_total" not in detector:
                for alert in alerted:
                    alerts[alert["event_type"]] = alerts.get(alert["event_type"], 0) + 1
        print("    events emitted, one per incident: "
              + (", ".join(f"{k} {int(v)}" for k, v in sorted(alerts.items())) or "none"))
        for alert in alerted:
            print(f"      {alert['event_type']:<9} {alert['camera']:<20} incident {alert['incident']}  trace {alert['trace']}")
    else:
        print("\n== detector: not running (the gates' frames wait in its queue)")

    print("\n== events handled by the city functions, by type (function /metrics)")
    rows = []
    for spec in args.function:
        name, url = spec.split("=", 1)
        fn = metrics(url)
        received = by_label(fn, "safecity_events_received_total", "event_type")
        for event_type in sorted(received):
            rows.append([event_type, name, int(received[event_type]),
                         int(total(fn, "safecity_events_succeeded_total", event_type=event_type)),
                         int(total(fn, "safecity_events_retried_total", event_type=event_type)),
                         int(total(fn, "safecity_events_dead_lettered_total", event_type=event_type))])
    table(rows, ["event type", "function", "received", "succeeded", "retried", "dead-lettered"])

    print("\n== incidents on the map (GET /api/incidents)")
    features = json.loads(get(args.map.rstrip("/") + "/api/incidents"))["features"]
    rows = []
    for feature in features:
        p = feature["properties"]
        lon, lat = feature["geometry"]["coordinates"]
        rows.append([p["incident_id"], p["event_type"], p["camera_id"], p["region"], f"{lat:.4f},{lon:.4f}",
                     f"{p['confidence']:.2f}", p["first_seen"][11:19], p["last_seen"][11:19],
                     "yes" if p.get("snapshot_url") else "no"])
    if rows:
        table(rows, ["incident", "type", "camera", "region", "lat,lon", "conf", "first", "last", "snapshot"])
    else:
        print("    (none)")

    print("\n== posts received by the webhook sink (GET /posts), signatures verified")
    posts = json.loads(get(args.sink.rstrip("/") + "/posts"))
    rows = []
    for post in posts:
        rows.append([post["id"], post["idempotency_key"], post["language"],
                     f"{post['media'][0]['bytes']} bytes" if post["media"] else "none", post["replays"],
                     post["text"].splitlines()[0][:40]])
    if rows:
        table(rows, ["post", "idempotency key", "lang", "image", "replays", "first line"])
    else:
        print("    (none)")

    print("\n== checks")
    for camera in args.still_camera:
        check(forwarded_by_camera.get(camera, -1) == 0,
              f"still camera {camera} forwarded nothing ({int(forwarded_by_camera.get(camera, -1))} frames)")
    for camera in args.accident_camera:
        check(forwarded_by_camera.get(camera, 0) > 0, f"{camera}: the passing bus was forwarded")
    if args.detector:
        pins = [f["properties"] for f in features if f["properties"]["event_type"] == "accident"]
        for camera in args.accident_camera:
            count = sum(1 for p in pins if p["camera_id"] == camera)
            check(count == 1, f"{camera}: exactly one accident incident on the map (found {count})")
        check(len(pins) == int(alerts.get("accident", 0)),
              f"one pin per accident incident the detector emitted ({len(pins)} pins, "
              f"{int(alerts.get('accident', 0))} incidents)")
    for camera in args.people_camera:
        count = sum(1 for f in features if f["properties"]["camera_id"] == camera)
        check(forwarded_by_camera.get(camera, 0) > 0 and count == 0,
              f"{camera}: the people were forwarded, and no incident (`person` is no city event)")
    if args.map_pin_log and alerted:
        with open(args.map_pin_log, encoding="utf-8") as log:
            pinned = {m["incident"]: m["trace"] for m in map(PINNED.search, log) if m}
        accidents = [a for a in alerted if a["event_type"] == "accident"]
        same = sum(1 for a in accidents if pinned.get(a["incident"]) == a["trace"])
        check(same == len(accidents),
              f"map-pin pinned each accident alert in the detector's trace ({same} of {len(accidents)})")
    keys = [p["idempotency_key"] for p in posts]
    check(len(keys) == len(set(keys)), "no incident was posted twice")
    fire_posts = sum(1 for k in keys if k.startswith("fire-post-"))
    caption_posts = len(keys) - fire_posts
    expected_captions = 1 + int(alerts.get("knife", 0)) + int(alerts.get("gun", 0))
    check(fire_posts == 1, f"fire-post posted the fire incident once ({fire_posts} posts)")
    check(caption_posts == expected_captions,
          f"caption posted each gun/knife incident once ({caption_posts} posts, {expected_captions} incidents)")
    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
