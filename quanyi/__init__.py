"""The composition root: the one package that knows every other, and that no package imports.

`quanyi.app.create_app` builds the platform shell (`saas.app.create_shell_app`) and calls each domain
package's `init_app`; `quanyi.wsgi` serves it and `quanyi.cli` is the `quanyi` console script. Every
other package is handed the app (a Flask `init_app(app)`, the CLI's and the worker's `current_app`).
"""
