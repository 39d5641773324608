-- Run once by the postgres image when its data volume is empty (mounted into
-- /docker-entrypoint-initdb.d/ by compose.replicas.yaml), as the superuser `postgres`, before
-- the server listens on the network. The hubs' role owns their database and is no superuser:
-- the hub creates and migrates its schema itself (its tables in the database's public schema).
-- The password is the one init.sh made (caravan-password); the hubs read their own copy of it.
\set caravan_password `cat /run/caravan-db/caravan-password`
CREATE ROLE caravan LOGIN PASSWORD :'caravan_password';
CREATE DATABASE caravan OWNER caravan;
