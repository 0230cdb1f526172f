#!/usr/bin/env bash
# The local city demo: the whole safecity pipeline on this machine, with real
# processes on the local RabbitMQ (in a virtual host of its own, deleted at
# the end). See docs/demo.md.
#
#   cctv-sim: 4 logical cameras in 2 regions, scenes made from the sample photos
#     -> motion-gate seoul, motion-gate daejeon  (only frames with motion)
#     -> safecity.frames -> detector (COCO yolov4-tiny on candle, CPU)
#     -> safecity.events -> map-pin (+ `map-pin serve`), fire-post, caption
#     -> fire-post and caption post through the signed webhook to
#        `safecity webhook-sink`, which checks the signature and prints the post.
#
# Then it prints a summary (gate metrics, events by type, incidents, posts,
# dead letters), checks the outcome, and stops everything with SIGTERM.
#
# Settings (environment):
#   SAFECITY_DEMO_PORT_BASE       18700   ports base+1 .. base+40 on 127.0.0.1
#   SAFECITY_DEMO_VHOST           safecity-demo
#   SAFECITY_DEMO_AMQP_HOST       127.0.0.1:5672
#   SAFECITY_DEMO_MANAGEMENT_URL  http://127.0.0.1:15672   (guest/guest)
#   SAFECITY_DEMO_TIMEOUT         120     seconds, limit of each wait
#   SAFECITY_DEMO_LINGER          0       seconds to keep the map up after the summary
#   SAFECITY_DEMO_KEEP            0       1: keep logs and databases (path printed)
#   SAFECITY_DEMO_DETECTOR        on      off: no detector; the frames wait in its queue
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

base=${SAFECITY_DEMO_PORT_BASE:-18700}
vhost=${SAFECITY_DEMO_VHOST:-safecity-demo}
amqp_host=${SAFECITY_DEMO_AMQP_HOST:-127.0.0.1:5672}
management=${SAFECITY_DEMO_MANAGEMENT_URL:-http://127.0.0.1:15672}
timeout=${SAFECITY_DEMO_TIMEOUT:-120}
linger=${SAFECITY_DEMO_LINGER:-0}
keep=${SAFECITY_DEMO_KEEP:-0}
detector=${SAFECITY_DEMO_DETECTOR:-on}
[[ $detector =~ ^(on|off)$ ]] || { echo "SAFECITY_DEMO_DETECTOR=$detector: use on or off" >&2; exit 2; }
[[ $vhost =~ ^[A-Za-z0-9._-]+$ ]] || { echo "SAFECITY_DEMO_VHOST=$vhost: use letters, digits, . _ -" >&2; exit 2; }
[[ $base =~ ^[0-9]+$ ]] && ((base > 0 && base < 65000)) || { echo "SAFECITY_DEMO_PORT_BASE=$base: not a port below 65000" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ && $linger =~ ^[0-9]+$ ]] || { echo "SAFECITY_DEMO_TIMEOUT and SAFECITY_DEMO_LINGER are whole seconds" >&2; exit 2; }

port_cctv_seoul=$((base + 1)) port_cctv_daejeon=$((base + 2))
port_gate_seoul=$((base + 11)) port_gate_daejeon=$((base + 12))
port_detector=$((base + 21)) port_map_pin=$((base + 22)) port_fire_post=$((base + 23)) port_caption=$((base + 24))
port_map=$((base + 30)) port_sink=$((base + 40))
local_url() { echo "http://127.0.0.1:$1"; }

bin=$root/target/debug
assets=${SAFECITY_YOLO_ASSETS:-$root/target/yolo-assets}
work=$(mktemp -d "${TMPDIR:-/tmp}/safecity-demo.XXXXXX")
logs=$work/logs
mkdir -p "$logs"
export NO_COLOR=1

# ---------------------------------------------------------------- processes --
names=()
pids=()
# start NAME COMMAND...: runs COMMAND in the background, output in logs/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

show_log() {
  echo "---- last lines of $1's log ($logs/$1.log) ----" >&2
  tail -n 25 "$logs/$1.log" >&2 || true
}

# check_alive: fails, showing the log, when a started process has exited.
check_alive() {
  local i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      echo "!! ${names[i]} exited early" >&2
      show_log "${names[i]}"
      return 1
    fi
  done
}

# wait_until WHAT COMMAND...: polls COMMAND until it succeeds, for at most $timeout s.
wait_until() {
  local what=$1
  shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    check_alive || exit 1
    if ((SECONDS >= deadline)); then
      echo "!! timed out after ${timeout}s waiting for $what" >&2
      exit 1
    fi
    sleep 0.2
  done
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

# metric URL NAME [REGEX]: sum of the samples of NAME (label sets matching REGEX) at URL/metrics.
metric() {
  { curl -fsS --max-time 5 "$1/metrics" 2>/dev/null || true; } | awk -v name="$2" -v re="${3:-}" '
    index($0, name) == 1 && substr($0, length(name) + 1, 1) ~ /[{ ]/ && $0 ~ re { sum += $NF }
    END { printf "%d\n", sum }'
}

# stop_all: SIGTERM to each process, newest first (cameras before the functions
# they feed), waiting for each to exit; SIGKILL only after 30 s.
stop_all() {
  local i pid status waited
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || true
    waited=0
    while kill -0 "$pid" 2>/dev/null && ((waited < 300)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "   ${names[i]} did not stop within 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    status=0
    wait "$pid" 2>/dev/null || status=$?
    printf '   %-18s exit %s\n' "${names[i]}" "$status"
  done
  pids=()
  names=()
}

management_api() { curl -fsS -u guest:guest -H 'content-type: application/json' "$@"; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((${#pids[@]} > 0)); then
    echo "==> stopping (SIGTERM, then wait)"
    stop_all
  fi
  management_api -o /dev/null -X DELETE "$management/api/vhosts/$vhost" 2>/dev/null || true
  if [ "$keep" = 1 ]; then
    echo "==> logs and databases kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -------------------------------------------------------------------- build --
scripts/ensure-rabbitmq.sh
scripts/fetch-yolo-assets.sh
echo "==> building (debug; the model crates are optimised even in debug)"
packages=(-p safecity-cli -p safecity-motion-gate -p safecity-map-pin -p safecity-fire-post -p safecity-caption)
[ "$detector" = on ] && packages+=(-p safecity-detector)
# The simulator renders every pixel of 4 cameras in Rust: optimise it like the model crates.
cargo build --quiet --bins "${packages[@]}"
safecity() { "$bin/safecity" --amqp-url "$amqp_url" "$@"; }
run_started=$SECONDS

# ------------------------------------------------------------------- broker --
management_ok() { management_api -o /dev/null --max-time 2 "$management/api/overview" 2>/dev/null; }
wait_until "the RabbitMQ management API at $management" management_ok
management_api -o /dev/null -X DELETE "$management/api/vhosts/$vhost" 2>/dev/null || true
management_api -o /dev/null -X PUT "$management/api/vhosts/$vhost"
management_api -o /dev/null -X PUT "$management/api/permissions/$vhost/guest" \
  -d '{"configure":".*","write":".*","read":".*"}'
amqp_url="amqp://guest:guest@$amqp_host/$vhost"
echo "==> RabbitMQ virtual host \`$vhost\` (fresh; deleted at the end)"

# ------------------------------------------------------------------ cameras --
# The scenes: street backgrounds with the sample photos pasted in as moving
# objects. A bus (COCO `bus`, mapped to `accident` for the demo) crosses one
# camera in each region; people (COCO `person`, not mapped) cross another;
# a still camera watching a photo, with sensor noise and slow lighting drift,
# must forward nothing. cctv-sim replays every scene from frame 0 when the gate
# connects, so each run shows the same frames.
registry=$work/cameras.toml
cat >"$registry" <<TOML
# Generated by scripts/demo.sh: the demo's cameras, for cctv-sim and the gates.
[gate.trigger]
trigger_frames = 2
hold_off = "1s"
max_fps = 2.0            # the demo detector runs on a shared CPU: 2 frames/s per active camera

[[cameras]]
id = "seoul-gangnam-01"
region = "seoul"
latitude = 37.4979
longitude = 127.0276
source = "http://127.0.0.1:$port_cctv_seoul/cameras/seoul-gangnam-01.mjpg"
[cameras.sim]
seed = 11
fps = 10.0
noise = 3
[[cameras.sim.objects]]  # a bus drives in from the left
enter = 10
x = -240.0
y = 40.0
vx = 15.0
width = 240
height = 320
sprite = "$assets/bus.jpg"

[[cameras]]
id = "seoul-jongno-02"
region = "seoul"
latitude = 37.5704
longitude = 126.9921
source = "http://127.0.0.1:$port_cctv_seoul/cameras/seoul-jongno-02.mjpg"
[cameras.sim]            # a still camera: noise and slow lighting drift, nothing moves
seed = 12
fps = 10.0
noise = 3
drift = { amplitude = 8.0, period_frames = 400 }
background = { photo = { path = "$assets/zidane.jpg" } }

[[cameras]]
id = "daejeon-dunsan-01"
region = "daejeon"
latitude = 36.3504
longitude = 127.3845
source = "http://127.0.0.1:$port_cctv_daejeon/cameras/daejeon-dunsan-01.mjpg"
[cameras.sim]
seed = 31
fps = 10.0
noise = 3
[[cameras.sim.objects]]  # two people walk in from the right
enter = 10
x = 640.0
y = 150.0
vx = -15.0
width = 320
height = 180
sprite = "$assets/zidane.jpg"

[[cameras]]
id = "daejeon-yuseong-02"
region = "daejeon"
latitude = 36.3622
longitude = 127.3563
source = "http://127.0.0.1:$port_cctv_daejeon/cameras/daejeon-yuseong-02.mjpg"
[cameras.sim]
seed = 32
fps = 10.0
noise = 3
[[cameras.sim.objects]]  # a bus drives in from the right
enter = 20
x = 640.0
y = 40.0
vx = -15.0
width = 240
height = 320
sprite = "$assets/bus.jpg"
TOML
# Every scene is over (objects gone, hold-off expired) by this frame: 10 s.
scene_frames=100
cameras=(seoul-gangnam-01 seoul-jongno-02 daejeon-dunsan-01 daejeon-yuseong-02)

# Place names for caption's Korean and English text.
places=$work/places.toml
cat >"$places" <<'TOML'
[[cameras]]
id = "seoul-gangnam-01"
name = "Gangnam Station crossing"
name_ko = "강남역 사거리"
[[cameras]]
id = "seoul-jongno-02"
name = "Jongno 3-ga"
name_ko = "종로3가"
[[cameras]]
id = "daejeon-dunsan-01"
name = "Dunsan-dong, Daejeon City Hall"
name_ko = "대전시청 둔산동"
[[cameras]]
id = "daejeon-yuseong-02"
name = "Yuseong Hot Springs Station"
name_ko = "유성온천역"
TOML

# ---------------------------------------------------------------- start-up --
# Consumers first, producers last, so that nothing published is unroutable.
secret_file=$work/webhook.secret
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file"
sink_url=$(local_url "$port_sink")
map_url=$(local_url "$port_map")

echo "==> starting the webhook sink (plays the social network)"
start webhook-sink "$bin/safecity" webhook-sink --addr "127.0.0.1:$port_sink" --secret-file "$secret_file"
wait_until "the webhook sink" http_ok "$sink_url/healthz"

echo "==> starting the city functions: map-pin (+ the map), fire-post, caption"
function_env=(
  SAFECITY_AMQP_URL="$amqp_url" SAFECITY_RETRY_DELAYS=1s,2s SAFECITY_SHUTDOWN_GRACE=10s
)
social_env=(
  SAFECITY_NOTIFIER=webhook SAFECITY_WEBHOOK_URL="$sink_url/hook"
  SAFECITY_WEBHOOK_SECRET_FILE="$secret_file"
)
start map-pin env "${function_env[@]}" DATABASE_URL="sqlite://$work/map-pin.db?mode=rwc" \
  SAFECITY_HTTP_ADDR="127.0.0.1:$port_map_pin" "$bin/map-pin"
start fire-post env "${function_env[@]}" "${social_env[@]}" \
  DATABASE_URL="sqlite://$work/fire-post.db?mode=rwc" \
  SAFECITY_HTTP_ADDR="127.0.0.1:$port_fire_post" "$bin/fire-post"
start caption env "${function_env[@]}" "${social_env[@]}" \
  DATABASE_URL="sqlite://$work/caption.db?mode=rwc" SAFECITY_CAMERA_REGISTRY="$places" \
  SAFECITY_HTTP_ADDR="127.0.0.1:$port_caption" "$bin/caption"
for port in "$port_map_pin" "$port_fire_post" "$port_caption"; do
  wait_until "the function on port $port" http_ok "$(local_url "$port")/readyz"
done
# The map shares map-pin's database: start it once map-pin has created the
# tables (two processes migrating one new database at once collide).
start map env DATABASE_URL="sqlite://$work/map-pin.db?mode=rwc" \
  SAFECITY_MAP_ADDR="127.0.0.1:$port_map" "$bin/map-pin" serve
wait_until "the map" http_ok "$map_url/healthz"
echo "    map: $map_url/   (GeoJSON: $map_url/api/incidents)"

detector_url=$(local_url "$port_detector")
if [ "$detector" = on ]; then
  echo "==> starting the detector (COCO yolov4-tiny, class map functions/detector/classes.coco.toml)"
  start detector env "${function_env[@]}" SAFECITY_HTTP_ADDR="127.0.0.1:$port_detector" \
    SAFECITY_DETECTOR_CFG="$assets/yolov4-tiny.cfg" \
    SAFECITY_DETECTOR_WEIGHTS="$assets/yolov4-tiny.weights" \
    SAFECITY_DETECTOR_NAMES="$assets/coco.names" \
    SAFECITY_DETECTOR_CLASSES="$root/functions/detector/classes.coco.toml" \
    "$bin/detector"
  wait_until "the detector" http_ok "$detector_url/readyz"
else
  echo "==> SAFECITY_DEMO_DETECTOR=off: no detector; its queue is declared so the frames wait there"
  management_api -o /dev/null -X PUT "$management/api/queues/$vhost/safecity.fn.detector" \
    -d '{"durable":true,"arguments":{"x-queue-type":"quorum"}}'
  management_api -o /dev/null -X POST "$management/api/bindings/$vhost/e/safecity.frames/q/safecity.fn.detector" \
    -d '{"routing_key":"#"}'
fi

echo "==> starting the logical CCTV and one motion gate per region"
start cctv-sim "$bin/cctv-sim" --registry "$registry" serve --mode replay
cameras_served() { [ "$(grep -cs '^serving ' "$logs/cctv-sim.log")" = "${#cameras[@]}" ]; }
wait_until "cctv-sim" cameras_served
sed 's/^/    /' "$logs/cctv-sim.log"
for region in seoul daejeon; do
  port_var=port_gate_$region
  start "gate-$region" "$bin/motion-gate" --registry "$registry" --region "$region" \
    --amqp-url "$amqp_url" --http-addr "127.0.0.1:${!port_var}"
done
gate_seoul=$(local_url "$port_gate_seoul") gate_daejeon=$(local_url "$port_gate_daejeon")
wait_until "the seoul gate" http_ok "$gate_seoul/readyz"
wait_until "the daejeon gate" http_ok "$gate_daejeon/readyz"

# ---------------------------------------------------------------- the run --
echo "==> the scenes play: $scene_frames frames per camera at 10 frames/s"
echo "==> meanwhile, events the COCO model cannot produce (it has no fire or gun class):"
echo "    a fire event and a gun event as a custom-trained model would emit them"
safecity publish --type fire --camera daejeon-yuseong-02 --region daejeon \
  --latitude 36.3622 --longitude 127.3563 --class fire --confidence 0.91 | sed 's/^/    /'
safecity publish --type gun --camera seoul-gangnam-01 --region seoul \
  --latitude 37.4979 --longitude 127.0276 --class gun --confidence 0.83 | sed 's/^/    /'
echo "==> and one malformed accident event (no id), to show the dead-letter path"
safecity publish-raw --routing-key accident \
  --body '{"specversion":"1.0","type":"accident","source":"/cameras/seoul-gangnam-01","data":{}}' | sed 's/^/    /'

gate_of() { case $1 in seoul-*) echo "$gate_seoul" ;; *) echo "$gate_daejeon" ;; esac; }
scenes_over() {
  local camera
  for camera in "${cameras[@]}"; do
    (($(metric "$(gate_of "$camera")" safecity_gate_frames_read_total "camera=\"$camera\"") >= scene_frames)) || return 1
  done
}
wait_until "the camera scenes to end" scenes_over
# A gate is done when every frame it chose to forward was confirmed (or dropped).
gate_drained() {
  local published dropped
  published=$(metric "$1" safecity_gate_frames_published_total)
  dropped=$(metric "$1" safecity_gate_frames_dropped_total)
  (($(metric "$1" safecity_gate_frames_forwarded_total) == published + dropped))
}
wait_until "the seoul gate's buffer to drain" gate_drained "$gate_seoul"
wait_until "the daejeon gate's buffer to drain" gate_drained "$gate_daejeon"
frames_published=$(($(metric "$gate_seoul" safecity_gate_frames_published_total) +
  $(metric "$gate_daejeon" safecity_gate_frames_published_total)))

if [ "$detector" = on ]; then
  echo "==> the detector works through the $frames_published forwarded frames"
  frames_handled() {
    (($(metric "$detector_url" safecity_events_succeeded_total 'event_type="frames"') +
      $(metric "$detector_url" safecity_events_dead_lettered_total) >= frames_published))
  }
  wait_until "the detector to handle every forwarded frame" frames_handled
else
  echo "==> $frames_published forwarded frames wait in safecity.fn.detector (no detector running)"
fi

# Every alert the detector emitted was confirmed by the broker before its frame
# was acked, so it is queued now: wait until each function has handled them all.
handled() { # URL: inputs that reached a verdict (succeeded or dead-lettered)
  echo $(($(metric "$1" safecity_events_succeeded_total) + $(metric "$1" safecity_events_dead_lettered_total)))
}
# The detector's alerts (one per incident), counted in its log: its own metrics
# are not on /metrics yet.
alerts() { grep -c "alerted a new incident .*event_type=$1 " "$logs/detector.log" 2>/dev/null || true; }
functions_done() {
  (($(handled "$(local_url "$port_map_pin")") >= $(alerts accident) + 1)) &&
    (($(handled "$(local_url "$port_fire_post")") >= $(alerts fire) + 1)) &&
    (($(handled "$(local_url "$port_caption")") >= $(alerts gun) + $(alerts knife) + 1))
}
wait_until "map-pin, fire-post and caption to handle every event" functions_done

# ------------------------------------------------------------------ summary --
summary_status=0
detector_args=()
[ "$detector" = on ] && detector_args=(--detector "$detector_url" --detector-log "$logs/detector.log"
  --map-pin-log "$logs/map-pin.log")
python3 scripts/demo-summary.py \
  --gate "seoul=$gate_seoul" --gate "daejeon=$gate_daejeon" "${detector_args[@]}" \
  --function "map-pin=$(local_url "$port_map_pin")" --function "fire-post=$(local_url "$port_fire_post")" \
  --function "caption=$(local_url "$port_caption")" \
  --map "$map_url" --sink "$sink_url" \
  --still-camera seoul-jongno-02 --people-camera daejeon-dunsan-01 \
  --accident-camera seoul-gangnam-01 --accident-camera daejeon-yuseong-02 || summary_status=$?

echo
echo "== dead letters (safecity dead-letters map-pin): what map-pin gave up on, and why"
safecity dead-letters map-pin --limit 5 | sed 's/^/    /'

echo
echo "== what the webhook sink printed (the posts the city would have published)"
sed 's/^/    /' "$logs/webhook-sink.log"

echo
echo "== the map's GeoJSON API: curl -s $map_url/api/incidents"
curl -fsS "$map_url/api/incidents" | head -c 1200
echo
if ((linger > 0)); then
  echo "==> the map stays up for ${linger}s: $map_url/"
  sleep "$linger"
fi
echo "==> run time after the build: $((SECONDS - run_started)) s"
echo "==> stopping (SIGTERM, then wait)"
stop_all
exit "$summary_status"
