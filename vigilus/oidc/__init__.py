"""Single sign-on through one OpenID Connect provider named by the environment (README.md "Single sign-on").

mozilla-django-oidc does the code flow (state, nonce, PKCE, the token request); this package gives it the
provider's endpoints from discovery (`provider`), checks the ID token strictly (`backend`), turns the claims into a
Vigilus user with a role (`services.sign_in`), and shows a person why a sign-in was refused (`views`).

`config` is read by the settings module, so it imports nothing that needs Django set up.
"""
