// decode_pprof.js -- decodes pprof profiles with the npm package pprof-format
// (an implementation independent of memtally's) and prints, per file, one JSON
// line: sample types, totals per type, samples, time range, labels on samples.
// usage: node decode_pprof.js NODE_MODULES_DIR FILE...
'use strict';
const path = require('path');
const fs = require('fs');
const zlib = require('zlib');
const { Profile } = require(path.resolve(process.argv[2], 'pprof-format'));

for (const file of process.argv.slice(3)) {
  let buf = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  const p = Profile.decode(buf);
  const s = (i) => p.stringTable.strings[Number(i)];
  const types = p.sampleType.map((t) => [s(t.type), s(t.unit)]);
  const totals = types.map(() => 0);
  const labelKeys = new Set();
  for (const smp of p.sample) {
    smp.value.forEach((v, i) => { totals[i] += Number(v); });
    for (const l of smp.label) labelKeys.add(s(l.key));
  }
  const functions = p.function.length;
  console.log(JSON.stringify({
    file, types, totals, samples: p.sample.length, locations: p.location.length, functions,
    mappings: p.mapping.length, time_nanos: Number(p.timeNanos), duration_nanos: Number(p.durationNanos),
    period: Number(p.period), default_type: s(p.defaultSampleType || 0), labels: [...labelKeys].sort(),
  }));
}
