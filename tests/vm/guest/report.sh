#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# ExecStopPost= of vmtest.service: the payload's result to the results share, the journal of the
# boot next to it; then SuccessAction=/FailureAction=poweroff end the VM through reboot(2), so the
# kernel sends TPM2_Shutdown (no dictionary-attack count against the next boot).
rc=0
[ "$SERVICE_RESULT" = success ] || rc=${EXIT_STATUS:-1}
case $rc in ''|*[!0-9]*) rc=1 ;; esac
mkdir -p /results; mountpoint -q /results || mount -t 9p -o trans=virtio,version=9p2000.L results /results
journalctl -b --no-pager -o short-monotonic > /results/journal.txt 2>&1
echo "vmtest: payload result=$SERVICE_RESULT status=$EXIT_STATUS -> rc $rc, uptime $(cut -d' ' -f1 /proc/uptime)s" > /dev/console
echo $rc > /results/rc; sync
