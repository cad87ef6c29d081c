"""The inbound side of a channel: deliveries received, verified and stored in the inbox, then drained.

- `webhooks`: the public endpoint `/hooks/<public_id>` (verify, store, acknowledge, request a drain).
- `targets`: what the endpoint knows of a channel (tenant, kind, status, opened secrets), kept briefly.
- `store`: the inbox store, one statement per database, used by the endpoint, the CSV upload and the demo.
- `csv_upload`: orders uploaded as CSV for channels with no API, stored as deliveries in our format.
- `drain`: the drain job's batches — up to 200 deliveries claimed with one statement, their new paid orders
  created and fulfilled together in one transaction.
- `inbox`: one delivery at a time — what a batch leaves (refunds, cancellations, repeats, subscriptions),
  replays, retries and the dead-letter list.
- `progress`: the channel page's live figures (backlog, drain rate, oldest waiting delivery).
"""
