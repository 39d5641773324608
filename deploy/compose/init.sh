#!/bin/sh
# One-shot bootstrap of the compose network, run by the `init` service as the image's user
# (10001). It does with the CLI what caravan-sandbox's `create` does in code
# (deploy/sandbox/src/main.rs), into the shared volume mounted at /etc/caravan:
#
#   hub/pki/           `caravan-hub pki init`: CA, hub TLS cert+key (names: hub, localhost,
#                      127.0.0.1), trust-anchor key, receipt key; participant and operator
#                      certificates from `caravan-hub pki issue`
#   hub/hub.toml       copied from config/hub.toml (compose.replicas.yaml: config/hub-postgres.toml,
#                      CARAVAN_HUB_TEMPLATE)
#   hub/postgres-password  compose.replicas.yaml only (CARAVAN_POSTGRES_SECRETS set): the database
#                      password of the role `caravan`, mode 0600, for the hub replicas
#   operator/          operator.pem, operator.key, ca.pem, admin.toml (operator `compose`; from
#                      config/admin.toml, or CARAVAN_ADMIN_TEMPLATE)
#   <ID>/              tls/{ca.pem,client.pem,client.key}, signing.key(.pub) from
#                      `caravan-spoke keygen`, nsw-token from `caravan-spoke token`,
#                      officer.txt (user:password), spoke.toml assembled from config/spoke-<id>.toml
#
# With CARAVAN_POSTGRES_SECRETS (compose.replicas.yaml), it also makes the database's passwords,
# once, in that folder (a volume that only this service and `postgres` mount): superuser-password
# and caravan-password, mode 0640 (the database runs as user postgres in group 10001).
#
# Run again, it reuses what exists (keys are never overwritten) and rewrites only the configs.
# To start over: `docker compose down -v`.
set -eu
umask 077

ETC=${CARAVAN_ETC:-/etc/caravan}
TEMPLATES=${CARAVAN_TEMPLATES:-/opt/caravan-compose/config}
SPOKES=${CARAVAN_SPOKES:-KZ CN UZ}
# The names the hub is reached at: spokes use the compose service name `hub`.
HUB_NAMES=${CARAVAN_HUB_NAMES:-hub localhost 127.0.0.1}
HUB_TEMPLATE=${CARAVAN_HUB_TEMPLATE:-hub.toml}
ADMIN_TEMPLATE=${CARAVAN_ADMIN_TEMPLATE:-admin.toml}
# Unset: the hub keeps its store in its data_dir, no database.
DB_SECRETS=${CARAVAN_POSTGRES_SECRETS:-}
OPERATOR=compose
PKI=$ETC/hub/pki

lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

# The CA, the hub's TLS certificate and key, the trust-anchor key and the receipt key.
if [ ! -f "$PKI/ca.pem" ]; then
    set --
    for name in $HUB_NAMES; do set -- "$@" --hub-name "$name"; done
    caravan-hub pki init --dir "$PKI" "$@"
fi
mkdir -p "$ETC/hub"
cp "$TEMPLATES/$HUB_TEMPLATE" "$ETC/hub/hub.toml"

# The database's passwords (compose.replicas.yaml): random, made once. The postgres container
# reads its copies through its group 10001 (`group_add`), hence 0640 in a folder 0750; the hubs
# get a copy of their own, 0600, since the hub refuses a password file that others may read.
if [ -n "$DB_SECRETS" ]; then
    chmod 0750 "$DB_SECRETS"
    for name in superuser-password caravan-password; do
        if [ ! -f "$DB_SECRETS/$name" ]; then
            od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$DB_SECRETS/$name.new"
            chmod 0640 "$DB_SECRETS/$name.new"
            mv "$DB_SECRETS/$name.new" "$DB_SECRETS/$name"
        fi
    done
    install -m 0600 "$DB_SECRETS/caravan-password" "$ETC/hub/postgres-password"
    echo "database passwords: $DB_SECRETS (the hubs read $ETC/hub/postgres-password)"
fi

# The operator who onboards the spokes (onboard.sh).
if [ ! -f "$PKI/operators/$OPERATOR.pem" ]; then
    caravan-hub pki issue --dir "$PKI" --operator "$OPERATOR"
fi
mkdir -p "$ETC/operator"
cp "$PKI/operators/$OPERATOR.pem" "$ETC/operator/operator.pem"
install -m 0600 "$PKI/operators/$OPERATOR.key" "$ETC/operator/operator.key"
cp "$PKI/ca.pem" "$ETC/operator/ca.pem"
cp "$TEMPLATES/$ADMIN_TEMPLATE" "$ETC/operator/admin.toml"

anchor=$(tr -d '\n' < "$PKI/hub-anchor.pub")
for id in $SPOKES; do
    id_lower=$(lower "$id")
    dir=$ETC/$id
    mkdir -p "$dir/tls"
    # Its TLS client certificate (URI SAN urn:caravan:participant:<ID>).
    if [ ! -f "$PKI/participants/$id.pem" ]; then
        caravan-hub pki issue --dir "$PKI" --participant "$id"
    fi
    cp "$PKI/participants/$id.pem" "$dir/tls/client.pem"
    install -m 0600 "$PKI/participants/$id.key" "$dir/tls/client.key"
    cp "$PKI/ca.pem" "$dir/tls/ca.pem"
    # Its document-signing key; onboard.sh registers signing.key.pub.
    if [ ! -f "$dir/signing.key" ]; then
        caravan-spoke keygen --out "$dir/signing.key"
    fi
    # The national single window's bearer token; the config keeps only its SHA-256.
    if [ ! -f "$dir/nsw-token" ]; then
        caravan-spoke token --name "$id_lower-single-window" --out "$dir/nsw-token" \
            > "$dir/nsw-tokens.toml"
    fi
    # An officer login for the console: user `officer`, a random password.
    if [ ! -f "$dir/officer.txt" ]; then
        password=$(od -An -N15 -tx1 /dev/urandom | tr -d ' \n')
        printf '%s\n' "$password" | caravan-spoke officer-password --user officer \
            > "$dir/officers.toml"
        printf 'officer:%s\n' "$password" > "$dir/officer.txt"
    fi
    # spoke.toml: the template with the pinned anchor key, then the token and officer lines.
    {
        sed "s|@ANCHOR_PUBLIC_KEY@|$anchor|" "$TEMPLATES/spoke-$id_lower.toml"
        echo
        cat "$dir/nsw-tokens.toml"
        echo
        cat "$dir/officers.toml"
    } > "$dir/spoke.toml.new"
    mv "$dir/spoke.toml.new" "$dir/spoke.toml"
    echo "spoke $id: $dir/spoke.toml (NSW token in $dir/nsw-token, console login in $dir/officer.txt)"
done
echo "anchor public key (spokes pin it): $anchor"
