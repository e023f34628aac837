"""Registry operations other code calls (views, CLI through the API, other domains).

``publishers``  publishers, their signing keys and scoped API tokens
``uploads``     the upload job: store the package, run the checks, apply the policy
``lifecycle``   review, deprecate, yank, unpublish, and the transition history
``queries``     versions, compatibility, dependency graphs, the resolver index
"""
