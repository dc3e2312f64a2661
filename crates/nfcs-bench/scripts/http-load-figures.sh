#!/usr/bin/env bash
# HTTP load figures for docs/benchmarks.md: nfcs-bench's engine and wrk on one node and on two nodes sharing a Redis.
set -u
B=${NFCS_BENCH:-target/release/nfcs-bench}; B=$(realpath "$B")
W=/tmp/measure; rm -rf $W; mkdir -p $W/a $W/b
redis-server --port 6391 --save "" --appendonly no --daemonize yes --logfile $W/redis.log
sleep 0.5
cfg() { printf '[cache.redis]\nenabled = true\nurl = "redis://127.0.0.1:6391"\n[cache.semantic]\nenabled = false\n[cache.disk]\ndirectory = "disk"\n[load_testing]\nthink_time_ms = 100\nramp_up_time = 2\n' > $1; }
cfg $W/a/n.toml; cfg $W/b/n.toml
(cd $W/a && $B serve --config n.toml --listen 127.0.0.1:19501 --work-dir . > out.log 2> err.log &)
(cd $W/b && $B serve --config n.toml --listen 127.0.0.1:19502 --work-dir . > out.log 2> err.log &)
sleep 3
A=http://127.0.0.1:19501; Bn=http://127.0.0.1:19502
curl -s -X PUT $A/v1/cache/wrk_key -H 'content-type: application/json' -d '{"value":"hello"}' >/dev/null
echo "== engine: 100 users, NFCS mix, think 100 ms, one node"
$B load --no-progress --model closed --users 100 --duration 20 --target $A --config $W/a/n.toml --out $W/r1 --work-dir $W > $W/r1.txt 2>&1; grep -E "load_|success|throughput|p9|p50" $W/r1.txt | head -30
echo "== engine: 100 users, NFCS mix, two nodes sharing Redis"
$B load --no-progress --model closed --users 100 --duration 20 --target $A,$Bn --config $W/a/n.toml --out $W/r2 --work-dir $W > $W/r2.txt 2>&1; grep -E "load_|cross|success" $W/r2.txt | head -40
printf '[load_testing]\nthink_time_ms = 0\nramp_up_time = 1\n' > $W/nothink.toml
echo "== engine: 100 users, GET /v1/cache/{key} alone, no think time"
$B load --no-progress --model closed --users 100 --duration 10 --operation cache_get --target $A --config $W/nothink.toml --out $W/r3 --work-dir $W > $W/r3.txt 2>&1; grep -E "load_" $W/r3.txt | head -30
echo "== wrk: 100 connections, 2 threads, GET /v1/cache/load_1"
wrk -t2 -c100 -d10s --latency $A/v1/cache/load_1
pkill -TERM -f "nfcs-bench serve --config n.toml"; sleep 1; redis-cli -p 6391 shutdown nosave 2>/dev/null
