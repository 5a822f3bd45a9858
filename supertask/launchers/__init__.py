"""Launchers turn a job's ``run:`` text into the command line of its child process.

The axis of variation is small on purpose: each launcher only builds an argv
(:class:`~supertask.launchers.base.Launcher`); starting and ending the process group
is shared in :mod:`supertask.launchers.base`, following children to their ends (output
relayed, timeouts, stop requests) in :mod:`supertask.launchers.follow`.
"""
