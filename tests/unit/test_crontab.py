"""Crontab text -> timetable: cron's reading rules, table-driven, and fire times vs croniter.

The fixtures in tests/data/crontabs are real files: Debian's /etc/crontab (package
cron), /etc/cron.d files of e2fsprogs, anacron, certbot, mdadm, php-common and
sysstat, sysstat's example user crontab, and a hand-written user crontab with every
form crontab(5) allows.
"""

from __future__ import annotations

import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from croniter import croniter

from supertask.schedules.trigger import parse_when, upcoming
from supertask.timetable.cronimport import import_crontabs, render_timetable
from supertask.timetable.cronnames import job_name, namespace_for
from supertask.timetable.crontab import parse_crontab, split_percent
from supertask.timetable.load import load_timetable

DATA = Path(__file__).resolve().parent.parent / "data" / "crontabs"
SYSTEM = ["debian-crontab", "e2scrub_all", "anacron", "certbot", "mdadm", "php", "sysstat"]
USER = ["user-crontab", "sysstat-example", "expressions"]
UTC = timezone.utc
FIRES = 50
STARTS = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 27, 23, 59, tzinfo=UTC),
          datetime(2028, 2, 28, 12, 0, tzinfo=UTC), datetime(2026, 12, 31, 23, 30, tzinfo=UTC)]


def cronie_day_or(cron: str) -> bool:
    """cronie's day rule for croniter: OR unless a day field begins with '*'."""
    fields = cron.split()
    return len(fields) != 5 or not (fields[2].startswith("*") or fields[4].startswith("*"))


def fixture_tabs() -> list:
    tabs = [parse_crontab((DATA / name).read_text(), name, system=True) for name in SYSTEM]
    tabs += [parse_crontab((DATA / name).read_text(), name) for name in USER]
    live = Path("/etc/cron.d")  # the machine's own, when cron is installed
    if live.is_dir():
        tabs += [parse_crontab(p.read_text(errors="replace"), str(p), system=True)
                 for p in sorted(live.iterdir()) if p.is_file() and not p.name.startswith(".")]
    return tabs


# -- cron's reading rules --------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "expected"), [
    ("echo hi", ("echo hi", None)),
    ("mail -s x a@b%Hello,%%bye%", ("mail -s x a@b", "Hello,\n\nbye\n")),
    (r"date +\%Y-\%m-\%d", ("date +%Y-%m-%d", None)),
    (r"cat%100\% sure%", ("cat", "100% sure\n")),
    (r"echo a\b%x\y", (r"echo a\b", "x\\y\n")),  # cron ends the input with a newline
    ("cmd%", ("cmd", "")),
])
def test_percent_is_cron_stdin(command: str, expected: tuple) -> None:
    assert split_percent(command) == expected


@pytest.mark.parametrize(("line", "when", "user", "command"), [
    ("0 3 * * * /bin/backup", "0 3 * * *", None, "/bin/backup"),
    ("*/5\t1-5  * *\tmon-fri   a  b", "*/5 1-5 * * mon-fri", None, "a  b"),
    ("@reboot /bin/warm", "@reboot", None, "/bin/warm"),
    ("@DAILY\t/bin/x", "@daily", None, "/bin/x"),
])
def test_job_lines(line: str, when: str, user: str | None, command: str) -> None:
    tab = parse_crontab(line)
    assert [(e.when, e.user, e.command) for e in tab.entries] == [(when, user, command)]
    assert tab.notes == ()


def test_system_lines_have_a_user_column() -> None:
    tab = parse_crontab("17 * * * * root cd / && run-parts /etc/cron.hourly\n@reboot www-data /srv/start\n",
                        system=True)
    assert [(e.when, e.user, e.command) for e in tab.entries] == [
        ("17 * * * *", "root", "cd / && run-parts /etc/cron.hourly"), ("@reboot", "www-data", "/srv/start")]


@pytest.mark.parametrize(("line", "name", "value"), [
    ("PATH=/usr/bin:/bin", "PATH", "/usr/bin:/bin"),
    ("  APP_HOME = \"/srv/my app\"  ", "APP_HOME", "/srv/my app"),
    ("GREETING='hello world'", "GREETING", "hello world"),
    ("MAILTO=\"\"", "MAILTO", ""),
    ("EMPTY=", "EMPTY", ""),
    ("EQ=a=b", "EQ", "a=b"),
])
def test_environment_lines(line: str, name: str, value: str) -> None:
    tab = parse_crontab(f"{line}\n0 0 * * * true\n")
    assert tab.entries[0].env_dict() == {name: value}


def test_environment_applies_to_the_lines_below_only() -> None:
    tab = parse_crontab("0 0 * * * a\nX=1\n0 0 * * * b\nX=2\n0 0 * * * c\n")
    assert [e.env_dict().get("X") for e in tab.entries] == [None, "1", "2"]


def test_comment_block_right_above_is_the_description() -> None:
    tab = parse_crontab("# header\n\n# Nightly dump\n# of the db\n0 3 * * * dump\n0 4 * * * other\n")
    assert [e.comment for e in tab.entries] == ["Nightly dump\nof the db", ""]
    assert tab.comments == ((1, "header"),)


def test_bad_lines_are_reported_not_dropped() -> None:
    tab = parse_crontab("0 3 * * dump\n@fortnightly x\n0 3 * * * root\n", system=True)
    assert tab.entries == ()
    assert [n.line for n in tab.notes] == [1, 2, 3]
    assert "@fortnightly" in tab.notes[1].message


@pytest.mark.parametrize(("command", "name"), [
    ("cd / && run-parts --report /etc/cron.hourly", "cron.hourly"),
    ("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }", "cron.daily"),
    ("test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && "
     "certbot -q renew --no-random-sleep-on-renew", "certbot-renew"),
    ("test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r", "e2scrub_all"),
    ("command -v debian-sa1 > /dev/null && debian-sa1 1 1", "debian-sa1"),
    ("[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
     "sessionclean"),
    ("/usr/bin/python3 /srv/report.py >/dev/null 2>&1", "report"),
    ("date +%s >> /tmp/x", "date"),
    ("tar czf /backup/home-$(date +%F).tgz /home", "backup-home"),
    ("tar czf - /etc > /backup/etc-$(date +%u).tgz", "backup-etc"),
    ("rsync -a --delete /home/ /mnt/backup/home/", "backup-home"),
    ("/usr/local/bin/backup-home.sh", "backup-home"),
    ("cd /srv/app && ./manage.py clearsessions", "manage-clearsessions"),
    ("pg_dump app > /var/backups/app.sql", "pg_dump-app"),
    ("   ", "job"),
])
def test_job_names_are_readable(command: str, name: str) -> None:
    assert job_name(command) == name


@pytest.mark.parametrize(("sources", "system", "namespace"), [
    (["crontab -l"], False, "web1-alice-crontab"),
    (["<stdin>"], False, "web1-alice-crontab"),
    (["/etc/crontab", "/etc/cron.d/certbot"], True, "web1-system-crontab"),
    (["/etc/cron.d/certbot"], True, "web1-certbot-crontab"),
    (["/etc/crontab"], True, "web1-system-crontab"),
])
def test_the_namespace_names_host_and_owner(sources: list[str], system: bool, namespace: str) -> None:
    assert namespace_for(sources, host="web1.example.com", user="alice", system=system) == namespace


# -- the mapping ---------------------------------------------------------------------------------


def imported(text: str, *, system: bool = False, run_as: str = "alice") -> tuple[dict, list[str]]:
    result = import_crontabs([parse_crontab(text, "tab", system=system)], run_as=run_as)
    yaml_text = render_timetable(result, header="test")
    tt = load_timetable(yaml_text, "out.yaml")  # the output is always a valid timetable
    return {j.name: j for j in tt.jobs}, [n.message for n in result.notes]


def test_names_are_unique_and_env_is_shared_through_defaults() -> None:
    jobs, notes = imported("PATH=/opt/bin:/bin\n0 1 * * * backup --a\nX=1\n0 2 * * * backup --b\n")
    assert sorted(jobs) == ["backup", "backup-2"]
    assert jobs["backup"].env == {"PATH": "/opt/bin:/bin"}
    assert jobs["backup-2"].env == {"PATH": "/opt/bin:/bin", "X": "1"}
    assert notes == []


def test_shell_cron_tz_and_mailto() -> None:
    jobs, notes = imported("SHELL=/bin/bash\nCRON_TZ=Asia/Tokyo\nMAILTO=me@example.com\n0 9 * * * echo ${HOME}\n")
    job = jobs["echo"]
    assert job.run == "exec:/bin/bash -c 'echo ${HOME}'"
    assert job.timezone == "Asia/Tokyo"
    assert "SHELL" not in job.env and "MAILTO" not in job.env and "CRON_TZ" not in job.env
    assert job.mailto == ("me@example.com",)
    assert len(notes) == 1 and "MAILTO=me@example.com carried over as mailto" in notes[0]


@pytest.mark.parametrize(("crontab", "defaults", "per_job"), [
    # shared by every job: into defaults
    ("MAILTO=ops@example.com\n0 9 * * * a\n0 10 * * * b\n", ("ops@example.com",), {"a": None, "b": None}),
    # a list, as cron takes it
    ("MAILTO=\"ops@example.com,root\"\n0 9 * * * a\n", None, {"a": ("ops@example.com", "root")}),
    # from a line on: those jobs only; MAILTO="" mails no one
    ("0 8 * * * a\nMAILTO=ops@example.com\n0 9 * * * b\nMAILTO=\"\"\n0 10 * * * c\n", None,
     {"a": None, "b": ("ops@example.com",), "c": None}),
    # not an address supertask takes: not carried (a note says so)
    ("MAILTO=-oops\n0 9 * * * a\n", None, {"a": None}),
])
def test_mailto_carries_over(crontab: str, defaults: tuple[str, ...] | None, per_job: dict) -> None:
    from supertask.timetable.load import load_timetable

    result = import_crontabs([parse_crontab(crontab, "tab")], run_as="me")
    text = render_timetable(result)
    assert tuple(str(result.defaults.get("mailto", "")).split(", ")) == (defaults or ("",))
    jobs = {j.name: j for j in load_timetable(text, "t").jobs}
    for name, want in per_job.items():
        assert jobs[name].mailto == (want or defaults or ())


def test_the_mailto_note_names_the_mailto_line() -> None:
    result = import_crontabs([parse_crontab("MAILTO=ops@example.com\n\n# x\n0 9 * * * a\n", "tab")], run_as="me")
    assert [(n.line, n.message.split()[0]) for n in result.notes] == [(1, "MAILTO=ops@example.com")]
    assert "carried over as mailto" in result.notes[0].message


def test_user_column_wrapped_for_root_reported_otherwise() -> None:
    text = "0 0 * * * www-data /srv/clean\n0 1 * * * root /srv/root-only\n"
    jobs, notes = imported(text, system=True, run_as="root")
    assert jobs["clean"].run == "exec:runuser -u www-data -- /bin/sh -c /srv/clean"
    assert jobs["root-only"].run == "cmd:/srv/root-only"
    assert notes == ["runs as www-data through `runuser -u www-data --` (supertask must run as root)"]
    jobs, notes = imported(text, system=True, run_as="alice")
    assert jobs["clean"].run == "cmd:/srv/clean"
    assert len(notes) == 2 and all("the job will run as alice" in n for n in notes)


def test_run_parts_is_reported() -> None:
    _jobs, notes = imported("17 * * * * root cd / && run-parts --report /etc/cron.hourly\n", system=True,
                            run_as="root")
    assert len(notes) == 1 and "run-parts" in notes[0]


def test_an_unreadable_schedule_is_kept_commented_out_and_reported() -> None:
    result = import_crontabs([parse_crontab("0 0 30 2 * never\n0 0 * * * ok\n", "tab")], run_as="me")
    text = render_timetable(result)
    assert "NOT IMPORTED" in text and "0 0 30 2 * never" in text
    assert [n.line for n in result.notes] == [1] and "never fires" in result.notes[0].message
    assert [j.name for j in load_timetable(text).jobs] == ["ok"]


@pytest.mark.parametrize("command", [
    "mail -s 'it is done' me@example.com%Hello,%%all done: 100\\% of it.%",
    "cat > /tmp/out; echo after%line one%line 'two'",
    "read a; echo \"got $a\"%it's here",
])
def test_percent_stdin_reaches_the_command_as_cron_gives_it(command: str, tmp_path: Path) -> None:
    """The generated shell text, run by sh, sees exactly the stdin cron would give."""
    plain, stdin = split_percent(command)
    probe = command.replace("mail -s 'it is done' me@example.com", "cat").replace("> /tmp/out", f"> {tmp_path}/o")
    jobs, _ = imported(f"0 0 * * * {probe}\n")
    (job,) = jobs.values()
    assert job.run is not None and job.run.startswith("cmd:")
    out = subprocess.run(["/bin/sh", "-c", job.run[4:]], capture_output=True, text=True, check=True).stdout
    plain_probe, stdin_probe = split_percent(probe)
    expected = subprocess.run(["/bin/sh", "-c", plain_probe], input=stdin_probe, capture_output=True, text=True,
                              check=True).stdout
    assert out == expected
    assert stdin is not None and plain


def test_bash_and_stdin_together() -> None:
    jobs, _ = imported("SHELL=/bin/bash\n0 0 * * * cat%a b%c\n")
    (job,) = jobs.values()
    argv = shlex.split(job.run[len("exec:"):])
    assert argv[:2] == ["/bin/bash", "-c"]
    assert subprocess.run(argv, capture_output=True, text=True).stdout == "a b\nc\n"


def test_stdin_last_line_is_read() -> None:
    """cron ends the % input with a newline, so `read` gets the last line too."""
    jobs, _ = imported("0 0 * * * while read -r l; do echo \"<$l>\"; done%one%two\n")
    (job,) = jobs.values()
    out = subprocess.run(["sh", "-c", job.run[len("cmd:"):]], capture_output=True, text=True).stdout
    assert out == "<one>\n<two>\n"


# -- fire times: every imported job fires when cron (croniter) would ------------------------------


def test_real_crontabs_import_to_valid_timetables() -> None:
    for tab in fixture_tabs():
        result = import_crontabs([tab], run_as="root")
        text = render_timetable(result)
        tt = load_timetable(text, tab.source)
        assert len(tt.jobs) == len(tab.entries), tab.source
        assert all(n.line is not None for n in tab.notes)


def fire_cases() -> list:
    cases = []
    for tab in fixture_tabs():
        result = import_crontabs([tab], run_as="root")
        jobs = load_timetable(render_timetable(result), tab.source).jobs
        for entry, job in zip(tab.entries, jobs, strict=True):
            cases.append(pytest.param(entry.when, job.when, job.timezone, id=f"{Path(tab.source).name}:{entry.line}"))
    return cases


@pytest.mark.parametrize(("cron", "when", "zone"), fire_cases())
def test_imported_jobs_fire_when_cron_does(cron: str, when: str, zone: str | None) -> None:
    schedule = parse_when(when, "UTC")
    if schedule.kind == "reboot":
        assert cron == "@reboot"
        return
    for start in STARTS:
        ours = [f.astimezone(UTC) for f in upcoming(schedule, start, FIRES)]
        it = croniter(cron, start, day_or=cronie_day_or(cron))
        theirs = [it.get_next(datetime).astimezone(UTC) for _ in range(FIRES)]
        assert ours == theirs, (cron, start)
    if zone:  # the job's own zone (CRON_TZ), from a start with no DST change ahead for weeks
        start = datetime(2026, 5, 1, tzinfo=parse_when(when, zone).timezone)
        ours = upcoming(parse_when(when, zone), start, FIRES)
        it = croniter(cron, start, day_or=cronie_day_or(cron))
        theirs = [it.get_next(datetime) for _ in range(FIRES)]
        assert [f.astimezone(UTC) for f in ours if f.month < 10] == [
            f.astimezone(UTC) for f in theirs if f.month < 10]


def test_the_star_step_day_rule_is_crons() -> None:
    """cron reads `0 0 */2 * mon` as Mondays on odd dates (a day field beginning with
    '*' does not restrict) and `0 0 1-31/2 * mon` as odd dates or Mondays: so do the jobs."""
    jobs, notes = imported("0 0 */2 * mon a\n0 0 1-31/2 * mon b\n")
    assert notes == []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fires = {name: [f"{f:%a %d}" for f in upcoming(parse_when(job.when, "UTC"), start, 4)]
             for name, job in jobs.items()}
    assert fires == {"a": ["Mon 05", "Mon 19", "Mon 09", "Mon 23"], "b": ["Sat 03", "Mon 05", "Wed 07", "Fri 09"]}


def test_a_short_line_is_kept_commented_out_and_notes_follow_the_lines() -> None:
    """`* * * echo short` (four fields) is reported and kept as NOT IMPORTED, and the
    notes come in line order, whichever step found them."""
    text = "MAILTO=ops@example.com\n0 0 30 2 * never\n* * * echo short\n0 1 * * * root /srv/job\n"
    result = import_crontabs([parse_crontab(text, "tab", system=True)], run_as="alice")
    assert [n.line for n in result.notes] == [1, 2, 3, 4]
    rendered = render_timetable(result)
    assert "NOT IMPORTED (see the notes above): tab:3: * * * echo short" in rendered
    assert "NOT IMPORTED (see the notes above): tab:2: 0 0 30 2 * never" in rendered
    assert rendered.index("tab:2: 0 0 30 2") < rendered.index("tab:3: * * * echo") < rendered.index("/srv/job")
    assert [j.name for j in load_timetable(rendered).jobs] == ["job"]


def test_the_namespace_is_written() -> None:
    result = import_crontabs([parse_crontab("0 0 * * * a\n", "tab")], run_as="me")
    result.namespace = "web1-me-crontab"
    assert load_timetable(render_timetable(result)).namespace == "web1-me-crontab"
