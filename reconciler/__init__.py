"""The domain: reconcile DRS waves into one versioned DynamoDB item each.

`core` is the pure state logic, `observe` reads DRS and EC2, `store` is the only code that
writes DynamoDB, and the services (`reconcile`, `sweep`, `executions`, `documents`) tie them
together for the thin handlers.
"""
