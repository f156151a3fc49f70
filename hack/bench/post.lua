-- wrk script: POST /jobs with a small JSON job request.
wrk.method = "POST"
wrk.body = '{"function":"sleep","args":{"seconds":"1"}}'
wrk.headers["Content-Type"] = "application/json"
