"""The inbound side of a channel: deliveries received, verified and stored in the inbox, then drained.

- `webhooks`: the public endpoint `/hooks/<public_id>` (verify, store, acknowledge, request a drain).
- `targets`: what the endpoint knows of a channel (tenant, kind, status, opened secrets), kept briefly.
- `store`: the inbox store, one statement per database, used by the endpoint, the CSV upload and the demo.
- `csv_upload`: orders uploaded as CSV for channels with no API, stored as deliveries in our format.

The drain that turns stored deliveries into orders is `integrations.inbox` (to move here too).
"""
