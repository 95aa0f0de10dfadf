"""The infrastructure inventory: servers, credentials, Docker endpoints, Wazuh instances, scan networks.

- `services`: the records and their audited saves (add, edit, remove; every change audited in its transaction)
- `connections`: SSH connections to servers, host-key pinning, connection tests
- `checks`: connection checks for Docker endpoints and Wazuh instances
- `targets`: an SSH call's `target` resolved to servers
- `forms`, `views`: the dashboard's (and the admin's) forms and pages
"""
