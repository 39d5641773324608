#!/bin/sh
# One-shot onboarding of the compose network's spokes, run by the `onboard` service once the
# hub is healthy. As the operator `compose` (admin.toml written by init.sh), it does with
# `caravan-hub admin` what caravan-sandbox's `onboard` does in code (deploy/sandbox/src/main.rs):
# register each spoke as a participant, register its signing key for all three document types,
# admit it to stage production, and open every corridor between the spokes for all document
# types.
# No conformance kit runs here, so the stage change and the corridors are made with an override
# (docs/runbook.md, "Onboarding stages and conformance reports"), as caravan-sandbox does; the
# exchange log keeps the reason below with each of them.
# What the registry already holds is skipped (ALREADY_REGISTERED); once everything is done it
# leaves operator/onboarded, and later runs do nothing.
set -eu

ETC=${CARAVAN_ETC:-/etc/caravan}
SPOKES=${CARAVAN_SPOKES:-KZ CN UZ}
ADMIN=$ETC/operator/admin.toml
DONE=$ETC/operator/onboarded
REASON="compose demonstration network: no conformance kit run"

if [ -f "$DONE" ]; then
    echo "already onboarded ($DONE); the registry is managed with caravan-hub admin from here on"
    exit 0
fi

admin() { caravan-hub admin --config "$ADMIN" "$@"; }

# Run an admin command; a refusal saying it is registered already counts as done.
once() {
    if out=$(admin "$@" 2>&1); then
        echo "$out"
        return 0
    fi
    case $out in
        *ALREADY_REGISTERED*) echo "skipped, registered already: $*"; return 0 ;;
    esac
    echo "$out" >&2
    return 1
}

country() {
    case $1 in
        AF) echo Afghanistan ;; AZ) echo Azerbaijan ;; CN) echo China ;; GE) echo Georgia ;;
        KZ) echo Kazakhstan ;; KG) echo "Kyrgyz Republic" ;; MN) echo Mongolia ;;
        PK) echo Pakistan ;; TJ) echo Tajikistan ;; TM) echo Turkmenistan ;;
        UZ) echo Uzbekistan ;; *) echo Participant ;;
    esac
}

# The hub may still be starting: wait for it (60 s at most), as the sandbox does.
tries=0
until admin trust-list show > /dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        admin trust-list show # shows why
        exit 1
    fi
    sleep 1
done

for id in $SPOKES; do
    id_lower=$(printf '%s' "$id" | tr '[:upper:]' '[:lower:]')
    once participant add "$id" --name "$(country "$id")" \
        --contact "operations@$id_lower.compose.invalid"
    once key register --participant "$id" --types e-co,e-phyto,e-invoice \
        --public-key "$ETC/$id/signing.key.pub"
    admin participant stage "$id" production --override "$REASON"
done
for from in $SPOKES; do
    for to in $SPOKES; do
        if [ "$from" != "$to" ]; then
            admin corridor open "$from" "$to" all --override "$REASON"
        fi
    done
done
touch "$DONE"
admin trust-list show
