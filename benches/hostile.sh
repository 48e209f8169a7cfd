#!/usr/bin/env bash
# The hostile-client suites, run one after another with their numbers shown: each attack (loopback
# only, bounded in count and time) starts the real binary as a child process and prints what it
# cost the server (RSS, latency of /health meanwhile, answers, log lines). The same tests run in
# `scripts/test.sh`; this runner keeps their printed lines in benches/results/hostile.md.
#   tests/hostile_grpc.rs    stalled streams, a header-only stream flood, 20,000 silent connections,
#                            idle and silent connections
#   tests/hostile_http.rs    gzip bombs, bodies past the server's budget, a tenant over its quota
#                            and the log, admin-token guesses, echoed input, unknown codings
#   tests/hostile_models.rs  a lying config.json, tampered and unpinned files, the memory cap,
#                            the load deadline, symlinks out of the repository, impossible ranges
#   tests/hostile_jobs.rs    a real full disk (tmpfs), big job submits, a tenant at its job cap
set -euo pipefail
cd "$(dirname "$0")/.."
out=benches/results/hostile.md
log=target/hostile.log
mkdir -p target benches/results
status=0
cargo test --test hostile_grpc --test hostile_http --test hostile_models --test hostile_jobs \
  -- --nocapture --test-threads 1 2>&1 | tee "$log" || status=$?
{
  echo "# Hostile clients: what each attack cost"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, commit $(git rev-parse --short HEAD)"
  echo "(\`bash benches/hostile.sh\`; debug build as the tests use, server a child process)."
  echo
  current=""
  while IFS= read -r line; do
    case "$line" in
      *"Running tests/hostile_"*)
        current=$(sed -E 's/.*Running (tests\/hostile_[a-z]+\.rs).*/\1/' <<< "$line")
        printf '\n## %s\n\n' "$current" ;;
      "test "*" ... "*)
        name=$(sed -E 's/^test ([a-z0-9_]+) \.\.\. .*/\1/' <<< "$line")
        rest=$(sed -E 's/^test [a-z0-9_]+ \.\.\. ?//' <<< "$line")
        printf -- '- **%s**: %s\n' "$name" "$rest" ;;
      "test result:"*) printf '\n%s\n' "$line" ;;
      *) [ -n "$current" ] && [ -n "$line" ] && case "$line" in
           ok|FAILED|running*|"") ;;
           *[a-z]*" ms"*|*MB*|*" x "*|*"log lines"*|*"in "*) printf '  %s\n' "$line" ;;
         esac ;;
    esac
  done < "$log"
} > "$out"
echo "== wrote $out"
exit "$status"
