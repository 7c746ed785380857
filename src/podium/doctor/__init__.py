"""``podium doctor``: the troubleshooting runbook, automated (spec section 16).

One module per runbook section holds that section's checks; each check is a small function
of a read-only :class:`~podium.doctor.facts.Facts` and the :class:`~podium.doctor.model.Options`,
returning :class:`~podium.doctor.model.Finding` s. :func:`~podium.doctor.runner.diagnose`
runs them all (or ``--only`` some) and :func:`~podium.doctor.runner.apply_fixes` applies the
safe ones.
"""
