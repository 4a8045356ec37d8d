# shellcheck shell=bash
# Sourced (not executed: it is not executable, so the entrypoint's helpers are in scope) once by
# the MariaDB image's entrypoint when it initialises an empty data directory
# (docker compose, Kubernetes): the metrics exporter's own account, which reads server status and
# nothing of the data. The local cluster makes the same account in cluster/mariadb.py.
: "${MYSQL_EXPORTER_PASSWORD:?the exporter account needs MYSQL_EXPORTER_PASSWORD}"
# docker_process_sql is the entrypoint's helper: it connects as root over the init socket.
user=${MYSQL_EXPORTER_USER:-exporter}
docker_process_sql <<SQL
CREATE USER IF NOT EXISTS '$user'@'%'
    IDENTIFIED BY '${MYSQL_EXPORTER_PASSWORD//\'/\'\'}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '$user'@'%';
GRANT SELECT ON performance_schema.* TO '$user'@'%';
SQL
