"""Real servers for the tests, in-process: HTTP serving the page copies (`localhttp`), SMTP sinks with faults
(`smtpsink`, `tlssink`), and a Slack Web API that records what it is sent (`slackapi`)."""
