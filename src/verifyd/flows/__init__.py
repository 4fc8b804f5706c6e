"""The verification flows: the only code that combines the database, channels and outbox.

One module per operation, each owning it end to end (validate, one transaction, the
answer)::

    signup.py    POST /v1/accounts: a pending account and what the policy verifies now
    plan.py      what a signup verifies: the arm's requirement, the ``channel`` field
    check.py     code checks and resends
    confirm.py   email link confirmation
    lookup.py    reads of one account or one verification
    sandbox.py   the sandbox inbox

and the pieces two flows share, which the flows call and never the other way round::

    limits.py    the named rate limits and their sandbox twins
    delivery.py  which provider carries a message; queue it or deliver it in the transaction
    approval.py  approve a verification, activate its account, say why one is closed

Nothing here imports FastAPI: routers under ``verifyd.api`` parse, call a flow, render.
"""
