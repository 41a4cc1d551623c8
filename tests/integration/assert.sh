# Shared by the integration tests (sourced, not run): TAP-style results and the failure count
# each script ends on.
failures=0
pass() { echo "ok - $1"; }
fail() { echo "not ok - $1" >&2; failures=$((failures + 1)); }
expect_eq() { # expect_eq NAME GOT WANT
    if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}
