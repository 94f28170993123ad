#!/usr/bin/env bash
# A real Grid Engine on this one machine (Debian 12, root, no systemd) for developers and CI:
# Debian's Son of Grid Engine 8.1.9, one cell "default" whose qmaster and execd run on this host,
# queue all.q with $GENRE_HPC_SGE_SLOTS slots (default 4: a driver job and three one-core workers).
# Usage: bash sge/dev-cluster.sh start|stop|status
# Every step follows what was measured on this kind of machine (../shared/reference/sge-on-one-machine.md):
# the numbers in the comments are its gotchas.
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SLOTS="${GENRE_HPC_SGE_SLOTS:-4}"
BIN=/usr/lib/gridengine
COMMON="$SGE_ROOT/$SGE_CELL/common"
LOGDIR=/var/log/gridengine-dev
RUNDIR=/run/gridengine-dev
WAIT_SECONDS=60
HOST=$(hostname)

log() { echo "sge-dev-cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# PIDs of live processes named $1. PID 1 here reaps slowly, so a stopped daemon can linger as a
# zombie (9): state Z/X counts as not running (kill -0 would say it is alive).
pids() { ps -eo pid=,stat=,comm= | awk -v c="$1" '$3 == c && $2 !~ /^[ZX]/ { print $1 }'; }
running() { [ -n "$(pids "$1")" ]; }

# TERM, wait up to 15 s (qmaster takes ~7 s to shut down), then KILL.
stop_procs() {
    local name=$1 i p
    p=$(pids "$name")
    [ -n "$p" ] || return 0
    log "stopping $name (pid $(echo $p))"
    kill $p 2>/dev/null || true
    for i in $(seq 75); do running "$name" || return 0; sleep 0.2; done
    kill -9 $(pids "$name") 2>/dev/null || true
    sleep 0.5
}

install_packages() {
    local pkgs=(gridengine-master gridengine-exec gridengine-client)
    export DEBIAN_FRONTEND=noninteractive
    # (1) no questions: the postinst then creates the cell "default" and its spool database
    debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $HOST
EOF
    # another apt may be running (a shared machine): wait for its lock rather than fail
    local apt=(apt-get -o DPkg::Lock::Timeout=300 -qq)
    apt-cache show "${pkgs[@]}" >/dev/null 2>&1 || "${apt[@]}" update
    "${apt[@]}" install -y "${pkgs[@]}" </dev/null >/dev/null ||
        { "${apt[@]}" update && "${apt[@]}" install -y "${pkgs[@]}" </dev/null >/dev/null; }
}

# (2) The host name resolves to 127.0.0.1, whose reverse name is localhost: without this alias every
# qconf/qsub is refused and qmaster rewrites act_qmaster. /etc/hosts stays as it is.
write_host_aliases() {
    local line="$HOST localhost"
    [ "$(cat "$COMMON/host_aliases" 2>/dev/null)" = "$line" ] && return 0
    echo "$line" >"$COMMON/host_aliases"
    echo "$HOST" >"$COMMON/act_qmaster"
}

# (7) The daemons by hand: the /usr/sbin wrappers and init scripts assume systemd or init.
# stdio redirected so that they never hold a caller's pipe open (CI, subprocess capture).
start_qmaster() {
    running sge_qmaster && return 0
    SGE_QMASTER_PIDFILE="$RUNDIR/qmaster.pid" "$BIN/sge_qmaster" </dev/null >"$LOGDIR/qmaster.out" 2>&1 ||
        { show_logs; die "sge_qmaster failed to start"; }
}

start_execd() {
    running sge_execd && return 0
    SGE_EXECD_PIDFILE="$RUNDIR/execd.pid" "$BIN/sge_execd" </dev/null >"$LOGDIR/execd.out" 2>&1 ||
        { show_logs; die "sge_execd failed to start"; }
}

# the user the daemons run as: the cell's bootstrap file names it (Debian: sgeadmin)
admin_user() { awk '$1 == "admin_user" { print $2 }' "$COMMON/bootstrap" 2>/dev/null | grep . || echo root; }

# until CMD succeeds, or die after WAIT_SECONDS with WHAT
wait_for() {
    local what=$1; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { show_logs; die "$what not ready after ${WAIT_SECONDS}s"; }
        sleep 0.5
    done
}

# (8) list queries (qconf -ss, ...) exit 1 when the list is empty: ask for the global config instead
qmaster_answers() { timeout 10 qconf -sconf global; }

# (8) the queue instance is listed with no state flags (a, u, E, d, ...)
queue_ready() {
    timeout 10 qstat -f -q all.q 2>/dev/null |
        awk -v q="all.q@$HOST" '$1 == q { found = 1; if (NF > 5) bad = 1 } END { exit !(found && !bad) }'
}

# whether two qconf dumps differ beyond the alignment of their columns
differs() { ! cmp -s <(tr -s ' \t' ' ' <"$1") <(tr -s ' \t' ' ' <"$2"); }

# set KEY VALUE in a `qconf -s...` dump held in file $1
set_keys() {
    local file=$1; shift
    while [ $# -ge 2 ]; do
        if grep -q "^$1 " "$file"; then
            sed -i "s|^$1 .*|$1 $2|" "$file"
        else
            echo "$1 $2" >>"$file"
        fi
        shift 2
    done
}

configure_cell() {
    local tmp; tmp=$(mktemp -d)
    # (3) jobs from root: Debian's global config refuses uids below 1000. (5) fast load reports, no mail.
    # login_shells none: by default bash starts a job script as a login shell, which reads root's
    # ~/.profile and ~/.bashrc, and this machine's runs `pyenv init`, whose rehash takes a lock
    # file; a job killed inside that second (qdel, h_rt) leaves the lock, and every later job then
    # waits 60 s for it before its first command: a worker job of a minute's walltime never
    # started Python, and an extraction made no progress at all (CI, stop 26). Jobs here need
    # nothing from login files: the scripts are given their Python.
    # -Mconf takes the config's name from the file name.
    qconf -sconf global >"$tmp/global"
    set_keys "$tmp/global" min_uid 0 min_gid 0 load_report_time 00:00:10 administrator_mail none \
        login_shells none
    if differs <(qconf -sconf global) "$tmp/global"; then
        qconf -Mconf "$tmp/global" >/dev/null
        # a running execd applies a changed global config some seconds later (jobs started in
        # between still ran as login shells); restarted by cmd_start, it reads it at once
        stop_procs sge_execd
    fi
    # (5) dispatch within a second of a submission or a finished job
    qconf -ssconf >"$tmp/sched"
    set_keys "$tmp/sched" schedule_interval 0:0:1 flush_submit_sec 1 flush_finish_sec 1 \
        job_load_adjustments NONE load_adjustment_decay_time 0:0:0
    differs <(qconf -ssconf) "$tmp/sched" && qconf -Msconf "$tmp/sched" >/dev/null

    # (6) the cell's contents: submit host, exec host, host group, parallel environments, queue
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null
    if ! qconf -se "$HOST" >/dev/null 2>&1; then
        printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" "user_lists NONE" \
            "xuser_lists NONE" "projects NONE" "xprojects NONE" "usage_scaling NONE" \
            "report_variables NONE" >"$tmp/exechost"
        qconf -Ae "$tmp/exechost" >/dev/null
    fi
    qconf -shgrp @allhosts >/dev/null 2>&1 ||
        { printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$tmp/allhosts"; qconf -Ahgrp "$tmp/allhosts" >/dev/null; }
    local pe
    for pe in make mpi smp; do  # the queue template refers to them
        qconf -sp "$pe" >/dev/null 2>&1 || qconf -Ap "/usr/share/gridengine/util/resources/pe/$pe" >/dev/null
    done
    # (4) load_thresholds NONE: the default np_load_avg=1.75 stops dispatch whenever this 2-core
    # machine is busy. (6) In the default posix_compliant mode a job script's #! line is ignored and
    # the queue's shell runs it. That shell stays the template's /bin/sh (dash here; csh at many
    # sites): genre-hpc's job scripts ask for bash themselves (-S /bin/bash), and a script that
    # forgets fails here too.
    if qconf -sq all.q >"$tmp/queue" 2>/dev/null; then
        cp "$tmp/queue" "$tmp/queue.old"
    else
        qconf -sq >"$tmp/queue"  # without a name: the template
        : >"$tmp/queue.old"
    fi
    set_keys "$tmp/queue" qname all.q hostlist @allhosts slots "$SLOTS" shell /bin/sh \
        load_thresholds NONE pe_list "make mpi smp"
    if [ ! -s "$tmp/queue.old" ]; then
        qconf -Aq "$tmp/queue" >/dev/null
    elif differs "$tmp/queue" "$tmp/queue.old"; then
        qconf -Mq "$tmp/queue" >/dev/null
    fi
    rm -rf "$tmp"
}

show_logs() {
    local f
    for f in "$LOGDIR"/qmaster.out "$LOGDIR"/execd.out /var/spool/gridengine/qmaster/messages \
             /var/spool/gridengine/execd/"$HOST"/messages /tmp/qmaster_messages /tmp/execd_messages; do
        [ -s "$f" ] && { echo "--- tail $f"; tail -n 15 "$f"; }
    done >&2
}

cmd_start() {
    local t0=$SECONDS
    if [ ! -x "$BIN/sge_qmaster" ] || [ ! -x "$BIN/sge_execd" ] || ! command -v qsub >/dev/null ||
       [ ! -d "$COMMON" ]; then
        log "installing gridengine-master, -exec, -client"
        install_packages
        # where policy-rc.d allows it, the packages' init scripts started daemons before the alias
        # existed; restart them under our control
        stop_procs sge_execd
        stop_procs sge_qmaster
    fi
    [ -d "$COMMON" ] || die "$COMMON missing: the gridengine-common postinst did not create the cell"
    install -d "$LOGDIR"
    # the daemons drop to the cell's admin user before they write their pid files
    install -d -o "$(admin_user)" "$RUNDIR"
    write_host_aliases
    start_qmaster
    wait_for "qmaster" qmaster_answers
    configure_cell
    start_execd
    wait_for "queue all.q@$HOST" queue_ready
    log "up in $((SECONDS - t0))s: all.q@$HOST, $SLOTS slots"
}

cmd_stop() {
    local i
    if running sge_qmaster && qmaster_answers >/dev/null 2>&1; then
        # jobs would outlive execd: delete them and let them go first
        qdel -f -u '*' >/dev/null 2>&1 || true
        for i in $(seq 40); do
            [ -z "$(timeout 10 qstat -u '*' 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_procs sge_execd
    stop_procs sge_qmaster
    log "stopped"
}

cmd_status() {
    local ok=0 name
    for name in sge_qmaster sge_execd; do
        if running "$name"; then echo "$name: running"; else echo "$name: NOT running"; ok=1; fi
    done
    if [ "$ok" = 0 ]; then qstat -f -q all.q || ok=1; fi
    if [ "$ok" = 0 ] && ! queue_ready; then echo "queue all.q@$HOST not usable"; ok=1; fi
    return "$ok"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
