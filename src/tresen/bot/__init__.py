"""The chatbot: offline matcher (text, language, matcher, backends), FAQ, flows, tone, blacklist."""
