#!/usr/bin/env bash
# Mutation testing (make mutation): gremlins with every mutator on, one
# package at a time, each package mutated against its own tests only, then a
# summary per package with the mutants listed in equivalent.txt left out.
#
#   hack/mutation/run.sh [PKG...]     default: the packages below
#   hack/mutation/run.sh --summary    summarise every report in MUTATION_OUT
#
# GREMLINS (default bin/gremlins), MUTATION_OUT (where the JSON reports go,
# default .mutation), MUTATION_WORKERS (default 1: gremlins builds and tests
# the package once per mutant, and the tests are concurrent themselves) and
# MUTATION_TIMEOUT_COEFFICIENT (a mutant's test run may take this many times
# the coverage run before it counts as timed out; default 5, because a
# mutant's run compiles and links the package's tests afresh, and 1 for
# drivers and sources, whose coverage run also runs their subpackages'
# tests against the emulators and databases, many times one package's run).
# MUTATION_FILES, a regexp of file names, mutates only the package's files
# that match it (a package's run in parts; the summary adds the parts up).
set -euo pipefail

cd "$(dirname "$0")/../.."
GREMLINS=${GREMLINS:-bin/gremlins}
OUT=${MUTATION_OUT:-.mutation}
WORKERS=${MUTATION_WORKERS:-1}
PKGS=("$@")
if [ ${#PKGS[@]} -eq 0 ]; then
	PKGS=(repourl drivers/fs drivers sources archiver)
fi

# Every mutator gremlins v0.6.0 has, including the ones off by default.
MUTATORS=(
	--arithmetic-base --conditionals-boundary --conditionals-negation
	--increment-decrement --invert-assignments --invert-bitwise
	--invert-bwassign --invert-logical --invert-loopctrl
	--invert-negatives --remove-self-assignments
)

# report_name is the JSON report's name for a package (and file selection).
report_name() {
	local name=${1//\//_}
	if [ -n "${MUTATION_FILES:-}" ]; then
		name+=-$(printf '%s' "$MUTATION_FILES" | tr -c 'a-zA-Z0-9' _)
	fi
	printf '%s' "$name"
}

if [ "${1:-}" = --summary ]; then
	reports=()
	for f in "$OUT"/*.json; do
		base=$(basename "$f" .json)
		pkg=${base%%-*}
		reports+=("${pkg//_//}=$f")
	done
	exec go run hack/mutation/summary.go -equivalents hack/mutation/equivalent.txt "${reports[@]}"
fi

mkdir -p "$OUT"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-count=1" # a cached coverage run would make the per-mutant timeout tiny
export CI=true # a test that needs a database or an emulator fails without one, never skips
for pkg in "${PKGS[@]}"; do
	pkg=${pkg#./}
	pkg=${pkg%/}
	name=$(report_name "$pkg")
	echo "== mutation: ./$pkg"
	case $pkg in
	drivers | sources) coeff=${MUTATION_TIMEOUT_COEFFICIENT:-1} ;;
	*) coeff=${MUTATION_TIMEOUT_COEFFICIENT:-5} ;;
	esac
	only=()
	if [ -n "${MUTATION_FILES:-}" ]; then
		for f in "$pkg"/*.go; do
			f=$(basename "$f")
			case $f in *_test.go) continue ;; esac
			if ! [[ $f =~ $MUTATION_FILES ]]; then
				only+=(-E "^${f//./\\.}\$")
			fi
		done
	fi
	start=$(date +%s)
	# gremlins gathers coverage over ./$pkg/... and mutates every file under
	# it; -E '/' keeps the mutants to the package's own directory (paths are
	# relative to it), so drivers is not mutated through drivers/s3 and
	# sources not through sources/postgres: those are packages of their own.
	# The build tag mutation adds tests that only mutation testing runs
	# (drivers/fs: the conformance suite, which make test runs in package
	# conformance).
	"$GREMLINS" unleash --workers "$WORKERS" --timeout-coefficient "$coeff" \
		"${MUTATORS[@]}" --tags mutation -E '/' "${only[@]}" -o "$OUT/$name.json" "./$pkg"
	echo "   $(( $(date +%s) - start ))s"
done

reports=()
for pkg in "${PKGS[@]}"; do
	pkg=${pkg#./}
	pkg=${pkg%/}
	reports+=("$pkg=$OUT/$(report_name "$pkg").json")
done
go run hack/mutation/summary.go -equivalents hack/mutation/equivalent.txt "${reports[@]}"
