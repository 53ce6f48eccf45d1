"""The wire between the plugin and ipamd, STANDARD LIBRARY ONLY (the plugin imports it on every exec):
the request/response protocol, small value types, fast JSON, reading back a CNI result, the socket client.
"""
